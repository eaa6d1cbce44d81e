//! Encodes simulated images as DICOM Part-10 files: MR Image Storage, Explicit VR Little Endian.
//!
//! Attributes follow the MR Image IOD (PS3.3 A.4) so that dciodvfy reports no errors; vendor
//! conventions (descriptions, ScanOptions tokens, ImageType, series numbering, rescale) come from
//! the series protocol. Ground truth (class, lesion) never enters the files.

use super::protocol::{Plane, Vendor};
use super::render::SeriesPixels;
use super::study::{SeriesPlan, Sex, Study};
use super::tissue::Weighting;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

/// Implementation Class UID of files we write (under the UUID-derived root, fixed).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.284186390624951463357405744011426108431";
pub const IMPLEMENTATION_VERSION: &str = "ISMF_EDGE_SIM1";

/// Formats a decimal string within the 16-character DS limit.
fn ds(x: f64) -> String {
    for digits in (0..=6).rev() {
        let s = format!("{x:.digits$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        let s = if s == "-0" { "0".to_string() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{x:.0}")
}

/// A decimal string of an `f32` at the precision it carries (95.6, not 95.599998).
fn ds32(x: f32) -> String {
    ds(format!("{x}").parse::<f64>().unwrap_or(x as f64))
}

fn ds_multi(values: &[f32]) -> PrimitiveValue {
    PrimitiveValue::Strs(values.iter().map(|&v| ds32(v)).collect())
}

fn strs(value: &str) -> PrimitiveValue {
    PrimitiveValue::Strs(value.split('\\').map(str::to_string).collect())
}

struct Builder(InMemDicomObject);

impl Builder {
    fn put(&mut self, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
        self.0.put(DataElement::new(tag, vr, value.into()));
    }
    fn text(&mut self, tag: Tag, vr: VR, value: &str) {
        self.put(tag, vr, strs(value));
    }
}

/// Identifies one image of a series: which stack and slice, and its 1-based instance number.
#[derive(Clone, Copy, Debug)]
pub struct ImageRef {
    pub stack: usize,
    pub slice: usize,
    pub instance: usize,
}

/// Builds the data set of one image.
pub fn image_object(
    study: &Study,
    plan: &SeriesPlan,
    pixels: &SeriesPixels,
    image: ImageRef,
) -> InMemDicomObject {
    let scanner = &study.scanner;
    let p = &plan.protocol;
    let stack = &pixels.stacks[image.stack];
    let mut b = Builder(InMemDicomObject::new_empty());
    let series_time = study.study_time.tm(plan.time_offset);
    let content_time = study
        .study_time
        .tm(plan.time_offset + 20 + image.slice as u32 / 4);
    let date = study.study_time.da();

    b.put(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100");
    b.text(tags::IMAGE_TYPE, VR::CS, p.labels.image_type);
    b.put(tags::INSTANCE_CREATION_DATE, VR::DA, date.as_str());
    b.put(tags::INSTANCE_CREATION_TIME, VR::TM, content_time.as_str());
    b.put(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE);
    b.put(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        plan.instance_uids[image.instance - 1].as_str(),
    );
    b.put(tags::STUDY_DATE, VR::DA, date.as_str());
    b.put(tags::SERIES_DATE, VR::DA, date.as_str());
    b.put(tags::ACQUISITION_DATE, VR::DA, date.as_str());
    b.put(tags::CONTENT_DATE, VR::DA, date.as_str());
    b.put(tags::STUDY_TIME, VR::TM, study.study_time.tm(0).as_str());
    b.put(tags::SERIES_TIME, VR::TM, series_time.as_str());
    b.put(tags::ACQUISITION_TIME, VR::TM, content_time.as_str());
    b.put(tags::CONTENT_TIME, VR::TM, content_time.as_str());
    b.put(tags::ACCESSION_NUMBER, VR::SH, study.accession.as_str());
    b.put(tags::MODALITY, VR::CS, "MR");
    b.put(tags::MANUFACTURER, VR::LO, scanner.vendor.manufacturer());
    b.put(tags::INSTITUTION_NAME, VR::LO, scanner.institution);
    b.put(tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    b.put(tags::STATION_NAME, VR::SH, scanner.station.as_str());
    b.put(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        study.study_description.as_str(),
    );
    b.put(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        p.labels.description.as_str(),
    );
    b.put(tags::MANUFACTURER_MODEL_NAME, VR::LO, scanner.model);

    b.put(tags::PATIENT_NAME, VR::PN, study.patient_name.as_str());
    b.put(tags::PATIENT_ID, VR::LO, study.patient_id.as_str());
    b.put(
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        study.birth_date.da().as_str(),
    );
    b.put(
        tags::PATIENT_SEX,
        VR::CS,
        match study.sex {
            Sex::M => "M",
            Sex::F => "F",
        },
    );
    if study.age_in_header {
        b.put(
            tags::PATIENT_AGE,
            VR::AS,
            format!("{:03}Y", study.age_years).as_str(),
        );
    }

    if p.contrast {
        b.put(tags::CONTRAST_BOLUS_AGENT, VR::LO, "Gadobutrol");
        b.put(tags::CONTRAST_BOLUS_ROUTE, VR::LO, "IV");
        b.put(tags::CONTRAST_BOLUS_VOLUME, VR::DS, "7.5");
    }
    b.put(tags::BODY_PART_EXAMINED, VR::CS, study.body_part);
    b.text(tags::SCANNING_SEQUENCE, VR::CS, p.labels.scanning_sequence);
    b.text(tags::SEQUENCE_VARIANT, VR::CS, p.labels.sequence_variant);
    b.text(tags::SCAN_OPTIONS, VR::CS, p.labels.scan_options);
    b.put(tags::MR_ACQUISITION_TYPE, VR::CS, "2D");
    b.put(tags::SEQUENCE_NAME, VR::SH, p.labels.sequence_name);
    b.put(tags::ANGIO_FLAG, VR::CS, "N");
    b.put(
        tags::SLICE_THICKNESS,
        VR::DS,
        ds32(stack.thickness).as_str(),
    );
    let (tr, te, ti) = match p.weighting {
        Weighting::SpinEcho { tr, te } => (tr, te, None),
        Weighting::InversionRecovery { tr, te, ti } => (tr, te, Some(ti)),
        Weighting::GradientEcho { tr, te, .. } => (tr, te, None),
        Weighting::Diffusion { tr, te, .. } => (tr, te, None),
    };
    b.put(tags::REPETITION_TIME, VR::DS, ds32(tr).as_str());
    b.put(tags::ECHO_TIME, VR::DS, ds32(te).as_str());
    if let Some(ti) = ti {
        b.put(tags::INVERSION_TIME, VR::DS, ds32(ti).as_str());
    }
    b.put(tags::NUMBER_OF_AVERAGES, VR::DS, ds32(p.averages).as_str());
    b.put(
        tags::IMAGING_FREQUENCY,
        VR::DS,
        ds32(42.577_48 * scanner.field.tesla()).as_str(),
    );
    b.put(tags::IMAGED_NUCLEUS, VR::SH, "1H");
    b.put(tags::ECHO_NUMBERS, VR::IS, "1");
    b.put(
        tags::MAGNETIC_FIELD_STRENGTH,
        VR::DS,
        ds(scanner.field.tesla() as f64).as_str(),
    );
    if stack.slices > 1 {
        b.put(
            tags::SPACING_BETWEEN_SLICES,
            VR::DS,
            ds32(stack.spacing).as_str(),
        );
    }
    b.put(
        tags::ECHO_TRAIN_LENGTH,
        VR::IS,
        p.echo_train.to_string().as_str(),
    );
    b.put(tags::PERCENT_SAMPLING, VR::DS, "100");
    b.put(tags::PERCENT_PHASE_FIELD_OF_VIEW, VR::DS, "100");
    b.put(tags::PIXEL_BANDWIDTH, VR::DS, ds32(p.bandwidth).as_str());
    b.put(tags::DEVICE_SERIAL_NUMBER, VR::LO, scanner.serial.as_str());
    b.text(tags::SOFTWARE_VERSIONS, VR::LO, scanner.software);
    b.put(tags::PROTOCOL_NAME, VR::LO, p.labels.protocol_name.as_str());
    b.put(tags::TRANSMIT_COIL_NAME, VR::SH, "Body");
    b.put(tags::RECEIVE_COIL_NAME, VR::SH, "Spine");
    let m = stack.rows as u16;
    b.put(
        tags::ACQUISITION_MATRIX,
        VR::US,
        PrimitiveValue::U16([0, m, m, 0].into_iter().collect()),
    );
    let phase = if stack.plane == Plane::Axial {
        "ROW"
    } else {
        "COL"
    };
    b.put(tags::IN_PLANE_PHASE_ENCODING_DIRECTION, VR::CS, phase);
    b.put(tags::FLIP_ANGLE, VR::DS, ds32(p.flip_angle).as_str());
    b.put(tags::PATIENT_POSITION, VR::CS, "HFS");
    if let Weighting::Diffusion { b: bval, .. } = p.weighting {
        b.put(
            tags::DIFFUSION_B_VALUE,
            VR::FD,
            PrimitiveValue::F64([bval as f64].into_iter().collect()),
        );
    }

    b.put(tags::STUDY_INSTANCE_UID, VR::UI, study.study_uid.as_str());
    b.put(tags::SERIES_INSTANCE_UID, VR::UI, plan.uid.as_str());
    b.put(tags::STUDY_ID, VR::SH, study.study_id.as_str());
    b.put(
        tags::SERIES_NUMBER,
        VR::IS,
        plan.number.to_string().as_str(),
    );
    b.put(tags::ACQUISITION_NUMBER, VR::IS, "1");
    b.put(
        tags::INSTANCE_NUMBER,
        VR::IS,
        image.instance.to_string().as_str(),
    );
    let ipp = stack.position(image.slice);
    b.put(tags::IMAGE_POSITION_PATIENT, VR::DS, ds_multi(&ipp));
    let iop: Vec<f32> = stack
        .row_dir
        .iter()
        .chain(stack.col_dir.iter())
        .copied()
        .collect();
    b.put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds_multi(&iop));
    b.put(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        study.frame_of_reference_uid.as_str(),
    );
    b.put(tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    let location = super::render::dot(ipp, stack.normal);
    b.put(tags::SLICE_LOCATION, VR::DS, ds32(location).as_str());
    b.put(
        tags::IMAGES_IN_ACQUISITION,
        VR::IS,
        plan.images().to_string().as_str(),
    );

    b.put(tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    b.put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    b.put(tags::ROWS, VR::US, stack.rows as u16);
    b.put(tags::COLUMNS, VR::US, stack.cols as u16);
    b.put(
        tags::PIXEL_SPACING,
        VR::DS,
        ds_multi(&[stack.pixel.0, stack.pixel.1]),
    );
    b.put(tags::BITS_ALLOCATED, VR::US, 16u16);
    b.put(tags::BITS_STORED, VR::US, 12u16);
    b.put(tags::HIGH_BIT, VR::US, 11u16);
    b.put(tags::PIXEL_REPRESENTATION, VR::US, 0u16);
    let (centre, width) = pixels.window;
    let (slope, intercept) = (pixels.slope, pixels.intercept);
    b.put(
        tags::WINDOW_CENTER,
        VR::DS,
        ds(centre * slope + intercept).as_str(),
    );
    b.put(tags::WINDOW_WIDTH, VR::DS, ds(width * slope).as_str());
    b.put(tags::RESCALE_INTERCEPT, VR::DS, ds(intercept).as_str());
    b.put(tags::RESCALE_SLOPE, VR::DS, ds(slope).as_str());
    b.put(
        tags::RESCALE_TYPE,
        VR::LO,
        if scanner.vendor == Vendor::Philips {
            "normalized"
        } else {
            "US"
        },
    );

    let n = stack.rows * stack.cols;
    let offset: usize = pixels.stacks[..image.stack]
        .iter()
        .map(|s| s.slices * n)
        .sum::<usize>()
        + image.slice * n;
    let frame: Vec<u16> = pixels.values[offset..offset + n].to_vec();
    b.put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(frame.into()));
    b.0
}

/// Encodes one image as a complete Part-10 file.
pub fn encode(obj: InMemDicomObject) -> Result<Vec<u8>, String> {
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(IMPLEMENTATION_VERSION),
        )
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(256 * 1024);
    file.write_all(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::ds;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        for x in [0.0, -0.0, 1.5, -123.456789123, 1e9 + 0.123456, 0.000001234] {
            let s = ds(x);
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap_or(f64::NAN);
            assert!(
                (back - x).abs() <= 1e-6_f64.max(x.abs() * 1e-6) + 1e-6,
                "{x} → {s}"
            );
        }
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(3.0), "3");
    }
}
