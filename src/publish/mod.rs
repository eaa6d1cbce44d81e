//! What the appliance tells the reading room: [`message`] holds the published JSON messages,
//! [`outbox`] keeps them durably until the broker acknowledges them, [`mqtt`] publishes them
//! (MQTT 5, TLS, status and last will), and [`subscribe`] is the reading-room side.

pub mod message;
pub mod mqtt;
pub mod outbox;
pub mod subscribe;
