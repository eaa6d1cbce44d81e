//! What the appliance tells the reading room: [`message`] holds the published JSON messages,
//! [`outbox`] keeps them durably until the broker acknowledges them, [`mqtt`] publishes them
//! (MQTT 5, TLS, status and last will), and [`subscribe`] is the reading-room side.

pub mod message;
pub mod mqtt;
pub mod outbox;
pub mod subscribe;
pub mod url;

/// The small tokio runtime the edges share (publisher, subscriber, signals): two workers are
/// plenty for one broker connection, and the synchronous core keeps the other threads.
pub fn edge_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}
