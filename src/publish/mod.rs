//! What the appliance tells the reading room: [`message`] holds the published JSON messages.

pub mod message;
