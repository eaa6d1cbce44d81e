//! DICOM networking: the Storage SCP that scanners and routers send studies to ([`scp`], landing
//! each instance on disk through [`landing`] and handing it to the core loop through
//! [`intake`]), and the Storage SCU that files the appliance's results into PACS ([`scu`]) from a
//! durable queue ([`queue`], emptied by [`sender`]). [`dimse`] holds the command sets both
//! speak. The conformance facts (SOP classes, transfer syntaxes, AE settings) are in
//! `docs/dicom-conformance.md`.

pub mod dimse;
pub mod intake;
pub mod landing;
pub mod queue;
pub mod scp;
pub mod scu;
pub mod sender;
