//! DIMSE command sets: the four messages a Storage SCP and SCU exchange (C-ECHO and C-STORE,
//! request and response), the status codes we answer with, and the SOP classes and transfer
//! syntaxes we negotiate.
//!
//! dicom-rs has no DIMSE layer (its `storescp` hand-builds these too). A command set is always
//! Implicit VR Little Endian, group 0000, led by its group length — which dicom-object's
//! `command_from_element_iter` computes.

use dicom_core::{dicom_value, DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

pub const VERIFICATION: &str = "1.2.840.10008.1.1";
pub const MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
pub const ENHANCED_MR_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.4.1";

/// What the receiver stores: the two MR image classes (the appliance reads nothing else).
pub const RECEIVED_CLASSES: [&str; 2] = [MR_IMAGE_STORAGE, ENHANCED_MR_IMAGE_STORAGE];

pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

pub const C_STORE_RQ: u16 = 0x0001;
pub const C_STORE_RSP: u16 = 0x8001;
pub const C_ECHO_RQ: u16 = 0x0030;
pub const C_ECHO_RSP: u16 = 0x8030;

/// (0000,0800) Command Data Set Type: no data set follows.
const NO_DATA_SET: u16 = 0x0101;

/// DIMSE status codes (PS3.4 Annex B, PS3.7 Annex C) the appliance sends or reads.
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources (the disk is short, or intake is paused).
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATA_SET_MISMATCH: u16 = 0xA900;
    /// Error: cannot understand (the data set does not parse).
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Failure: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Failure: unrecognized operation.
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;

    /// Success and the warnings (0001, Bxxx) both mean the peer has the instance.
    pub fn is_stored(code: u16) -> bool {
        code == SUCCESS || code == 0x0001 || (code & 0xF000) == 0xB000
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    #[error("command set does not parse: {0}")]
    Parse(String),
    #[error("command set lacks {0}")]
    Missing(&'static str),
    #[error("command set cannot be encoded: {0}")]
    Encode(String),
}

/// A received command set, with what the two services read of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Command {
    pub field: u16,
    pub message_id: u16,
    pub affected_sop_class: String,
    pub affected_sop_instance: String,
    pub has_data_set: bool,
    /// Responses only.
    pub status: Option<u16>,
    pub error_comment: Option<String>,
}

fn trimmed(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let s = obj.element(tag).ok()?.to_str().ok()?;
    Some(s.trim_end_matches(['\0', ' ']).to_string())
}

fn uint(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u16> {
    obj.element(tag).ok()?.to_int::<u16>().ok()
}

impl Command {
    /// Parses a command set as it arrived in P-DATA (Implicit VR Little Endian).
    pub fn parse(bytes: &[u8]) -> Result<Command, DimseError> {
        let obj =
            InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
                .map_err(|e| DimseError::Parse(e.to_string()))?;
        let field = uint(&obj, tags::COMMAND_FIELD).ok_or(DimseError::Missing("Command Field"))?;
        let message_id = uint(&obj, tags::MESSAGE_ID)
            .or_else(|| uint(&obj, tags::MESSAGE_ID_BEING_RESPONDED_TO))
            .ok_or(DimseError::Missing("Message ID"))?;
        Ok(Command {
            field,
            message_id,
            affected_sop_class: trimmed(&obj, tags::AFFECTED_SOP_CLASS_UID).unwrap_or_default(),
            affected_sop_instance: trimmed(&obj, tags::AFFECTED_SOP_INSTANCE_UID)
                .unwrap_or_default(),
            has_data_set: uint(&obj, tags::COMMAND_DATA_SET_TYPE) != Some(NO_DATA_SET),
            status: uint(&obj, tags::STATUS),
            error_comment: trimmed(&obj, tags::ERROR_COMMENT),
        })
    }
}

fn encode(elements: Vec<DataElement<InMemDicomObject>>) -> Result<Vec<u8>, DimseError> {
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut bytes = Vec::with_capacity(256);
    obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| DimseError::Encode(e.to_string()))?;
    Ok(bytes)
}

/// A UID value padded to even length with NUL, as the UI VR requires.
fn ui(uid: &str) -> String {
    let mut s = uid.to_string();
    if s.len() % 2 == 1 {
        s.push('\0');
    }
    s
}

/// C-ECHO-RQ.
pub fn echo_rq(message_id: u16) -> Result<Vec<u8>, DimseError> {
    encode(vec![
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, ui(VERIFICATION)),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [C_ECHO_RQ])),
        DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [message_id])),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [NO_DATA_SET]),
        ),
    ])
}

/// C-STORE-RQ (medium priority, a data set follows).
pub fn store_rq(
    message_id: u16,
    sop_class: &str,
    sop_instance: &str,
) -> Result<Vec<u8>, DimseError> {
    encode(vec![
        DataElement::new(tags::AFFECTED_SOP_CLASS_UID, VR::UI, ui(sop_class)),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [C_STORE_RQ])),
        DataElement::new(tags::MESSAGE_ID, VR::US, dicom_value!(U16, [message_id])),
        DataElement::new(tags::PRIORITY, VR::US, dicom_value!(U16, [0x0000])),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [0x0000]),
        ),
        DataElement::new(tags::AFFECTED_SOP_INSTANCE_UID, VR::UI, ui(sop_instance)),
    ])
}

/// The response to `rq` (C-ECHO-RSP or C-STORE-RSP) with `status`; an error comment (at most
/// 64 characters, the LO limit) says why a store failed.
pub fn response(rq: &Command, status: u16, comment: Option<&str>) -> Result<Vec<u8>, DimseError> {
    let field = match rq.field {
        C_ECHO_RQ => C_ECHO_RSP,
        C_STORE_RQ => C_STORE_RSP,
        other => other | 0x8000,
    };
    let mut e = vec![
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            ui(if rq.affected_sop_class.is_empty() {
                VERIFICATION
            } else {
                &rq.affected_sop_class
            }),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, dicom_value!(U16, [field])),
        DataElement::new(
            tags::MESSAGE_ID_BEING_RESPONDED_TO,
            VR::US,
            dicom_value!(U16, [rq.message_id]),
        ),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            dicom_value!(U16, [NO_DATA_SET]),
        ),
        DataElement::new(tags::STATUS, VR::US, dicom_value!(U16, [status])),
    ];
    if !rq.affected_sop_instance.is_empty() {
        e.push(DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            ui(&rq.affected_sop_instance),
        ));
    }
    if let Some(c) = comment {
        let mut c: String = c
            .chars()
            .filter(|ch| ch.is_ascii() && !ch.is_ascii_control() && *ch != '\\')
            .take(64)
            .collect();
        if c.len() % 2 == 1 {
            c.push(' ');
        }
        e.push(DataElement::new(tags::ERROR_COMMENT, VR::LO, c));
    }
    encode(e)
}

/// A UID as the standard allows it (digits and dots, 1–64 characters, no empty component):
/// received UIDs name files, so anything else is refused.
pub fn is_valid_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid
            .split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_request_and_response_round_trip() {
        let rq =
            Command::parse(&store_rq(7, MR_IMAGE_STORAGE, "1.2.3.4").expect("rq")).expect("parse");
        assert_eq!(rq.field, C_STORE_RQ);
        assert_eq!(rq.message_id, 7);
        assert_eq!(rq.affected_sop_class, MR_IMAGE_STORAGE);
        assert_eq!(rq.affected_sop_instance, "1.2.3.4");
        assert!(rq.has_data_set);
        let long = "x".repeat(100);
        let rsp =
            Command::parse(&response(&rq, status::CANNOT_UNDERSTAND, Some(&long)).expect("rsp"))
                .expect("parse");
        assert_eq!(rsp.field, C_STORE_RSP);
        assert_eq!(rsp.message_id, 7);
        assert_eq!(rsp.status, Some(status::CANNOT_UNDERSTAND));
        assert!(!rsp.has_data_set);
        assert_eq!(rsp.error_comment.map(|c| c.len()), Some(64));
        let echo = Command::parse(&echo_rq(3).expect("echo")).expect("parse");
        assert_eq!((echo.field, echo.has_data_set), (C_ECHO_RQ, false));
    }

    #[test]
    fn uids_that_could_escape_a_folder_are_invalid() {
        assert!(is_valid_uid("1.2.840.10008.5.1.4.1.1.4"));
        for bad in ["", "../x", "1..2", "1.2.", "1/2", &"1".repeat(65)] {
            assert!(!is_valid_uid(bad), "{bad}");
        }
        assert!(status::is_stored(0xB007) && status::is_stored(0) && !status::is_stored(0xA700));
    }
}
