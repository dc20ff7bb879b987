//! Spec-drift test: every `#### Layout: X` table in docs/hostmem.md must
//! match the Rust struct X field by field (name, offset, size) and in total
//! size, and every wire struct must have a table. The doc and the code can
//! therefore not change alone.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use hostmem_wire::zerocopy::FromZeros;
use hostmem_wire::{
    CompletionWord, Config, ConfigRequest, ConfigResponse, Event, Notification, Status, SubdeviceEntry, codec, echo,
};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    offset: usize,
    size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    total: usize,
    fields: Vec<Field>,
}

/// A layout table as written: rows with their type column.
struct RawTable {
    name: String,
    total: Option<usize>,
    rows: Vec<(Field, String)>,
    saw_header: bool,
}

const HEADER: [&str; 5] = ["offset", "size", "field", "type", "meaning"];

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

fn is_separator(cells: &[String]) -> bool {
    cells.iter().all(|c| !c.is_empty() && c.chars().all(|ch| ch == '-' || ch == ':'))
}

fn number(text: &str, what: &str, heading: &str) -> Result<usize, String> {
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => usize::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| format!("{heading}: {what} {text:?} is not a number"))
}

/// Parses every layout table. Also checks each table on its own: header
/// row, contiguous fields from 0 without gaps, sum equal to the stated total,
/// and each type's implied size equal to the size column.
fn parse_doc(doc: &str) -> Result<BTreeMap<String, Layout>, String> {
    // First pass: the tables as written, with their type column.
    let mut raw: Vec<RawTable> = Vec::new();
    let mut current: Option<RawTable> = None;

    let mut finish = |cur: Option<RawTable>| -> Result<(), String> {
        if let Some(table) = cur {
            if table.total.is_none() {
                return Err(format!("{}: no 'Total size: N bytes.' line", table.name));
            }
            if table.rows.is_empty() {
                return Err(format!("{}: table has no rows", table.name));
            }
            raw.push(table);
        }
        Ok(())
    };

    for line in doc.lines() {
        if let Some(name) = line.strip_prefix("#### Layout: ") {
            finish(current.take())?;
            current =
                Some(RawTable { name: name.trim().to_string(), total: None, rows: Vec::new(), saw_header: false });
            continue;
        }
        if line.starts_with('#') {
            finish(current.take())?;
            continue;
        }
        let Some(table) = current.as_mut() else {
            continue;
        };
        let name = table.name.as_str();
        if let Some(rest) = line.strip_prefix("Total size: ") {
            let n = rest.strip_suffix(" bytes.").ok_or(format!("{name}: malformed total line {line:?}"))?;
            table.total = Some(number(n, "total size", name)?);
            continue;
        }
        if !line.trim_start().starts_with('|') {
            continue;
        }
        let row = cells(line);
        if !table.saw_header {
            if row != HEADER {
                return Err(format!("{name}: table header is {row:?}, expected {HEADER:?}"));
            }
            table.saw_header = true;
            continue;
        }
        if is_separator(&row) {
            continue;
        }
        if row.len() != 5 {
            return Err(format!("{name}: row {row:?} does not have 5 cells"));
        }
        let field = Field {
            offset: number(&row[0], "offset", name)?,
            size: number(&row[1], "size", name)?,
            name: row[2].clone(),
        };
        table.rows.push((field, row[3].clone()));
    }
    finish(current.take())?;

    let totals: BTreeMap<String, usize> = raw.iter().map(|t| (t.name.clone(), t.total.unwrap_or(0))).collect();
    let type_size = |ty: &str| -> Option<usize> {
        let (base, count) = match ty.split_once('[') {
            Some((base, rest)) => (base, rest.strip_suffix(']')?.parse::<usize>().ok()?),
            None => (ty, 1),
        };
        let unit = match base {
            "u8" => 1,
            "le16" => 2,
            "le32" => 4,
            "le64" => 8,
            other => *totals.get(other)?,
        };
        Some(unit * count)
    };

    let mut layouts = BTreeMap::new();
    for RawTable { name, total, rows, .. } in raw {
        let total = total.unwrap_or(0);
        let mut next = 0;
        let mut fields = Vec::new();
        for (field, ty) in rows {
            if field.offset != next {
                return Err(format!(
                    "{name}.{}: offset {} but previous field ends at {next} (gap or overlap)",
                    field.name, field.offset
                ));
            }
            match type_size(&ty) {
                Some(s) if s == field.size => {}
                Some(s) => {
                    return Err(format!(
                        "{name}.{}: type {ty} is {s} bytes, size column says {}",
                        field.name, field.size
                    ));
                }
                None => return Err(format!("{name}.{}: unknown type {ty:?}", field.name)),
            }
            next = field.offset + field.size;
            fields.push(field);
        }
        if next != total {
            return Err(format!("{name}: fields end at {next}, total size is {total}"));
        }
        if layouts.insert(name.clone(), Layout { total, fields }).is_some() {
            return Err(format!("{name}: two layout tables"));
        }
    }
    Ok(layouts)
}

/// One entry per wire struct: the doc name and the Rust facts.
macro_rules! code_layout {
    ($map:ident, $doc_name:literal, $ty:ty { $($field:ident),* $(,)? }) => {{
        let zero = <$ty>::new_zeroed();
        let fields = vec![$(
            Field {
                name: stringify!($field).to_string(),
                offset: offset_of!($ty, $field),
                size: std::mem::size_of_val(&zero.$field),
            }
        ),*];
        $map.insert(
            $doc_name.to_string(),
            Layout { total: size_of::<$ty>(), fields },
        );
    }};
}

fn code_layouts() -> BTreeMap<String, Layout> {
    let mut m = BTreeMap::new();
    code_layout!(m, "Config", Config { magic, version, entries_present, num_subdevices, max_instances, entries });
    code_layout!(
        m,
        "SubdeviceEntry",
        SubdeviceEntry { vendor_id, device_id, revision, shmid, region_base, region_len, flags, reserved }
    );
    code_layout!(
        m,
        "ConfigRequest",
        ConfigRequest { opcode, instance_id, subdevice_index, flags, completion_offset, cookie }
    );
    code_layout!(
        m,
        "ConfigResponse",
        ConfigResponse { status, opcode, instance_id, notify_queue, subdevice_index, reserved, cookie, subdevice }
    );
    code_layout!(m, "Notification", Notification { instance_id, opcode, flags, reserved, seq, offset, size, metadata });
    code_layout!(
        m,
        "Event",
        Event { instance_id, event_type, status, flags, seq, offset, size, dropped, reserved, metadata }
    );
    code_layout!(m, "CompletionWord", CompletionWord { seq });
    code_layout!(m, "codec::DecodeMeta", codec::DecodeMeta { output_offset, output_capacity, reserved });
    code_layout!(
        m,
        "codec::FrameInfo",
        codec::FrameInfo { seq, status, width, height, channels, colorspace, reserved, pixels_size }
    );
    code_layout!(m, "echo::CopyMeta", echo::CopyMeta { dest_offset, reserved });
    m
}

/// Every difference between doc and code, as readable lines.
fn compare(doc: &BTreeMap<String, Layout>, code: &BTreeMap<String, Layout>) -> Vec<String> {
    let mut errors = Vec::new();
    for name in code.keys().filter(|n| !doc.contains_key(*n)) {
        errors.push(format!("{name}: wire struct has no '#### Layout: {name}' table"));
    }
    for name in doc.keys().filter(|n| !code.contains_key(*n)) {
        errors.push(format!("{name}: layout table has no struct in the drift test"));
    }
    for (name, d) in doc {
        let Some(c) = code.get(name) else { continue };
        if d.total != c.total {
            errors.push(format!("{name}: doc size {} != code size {}", d.total, c.total));
        }
        let doc_names: Vec<_> = d.fields.iter().map(|f| f.name.as_str()).collect();
        let code_names: Vec<_> = c.fields.iter().map(|f| f.name.as_str()).collect();
        if doc_names != code_names {
            errors.push(format!("{name}: doc fields {doc_names:?} != code fields {code_names:?}"));
        }
        for df in &d.fields {
            let Some(cf) = c.fields.iter().find(|f| f.name == df.name) else {
                continue;
            };
            if (df.offset, df.size) != (cf.offset, cf.size) {
                errors.push(format!(
                    "{name}.{}: doc offset {} size {} != code offset {} size {}",
                    df.name, df.offset, df.size, cf.offset, cf.size
                ));
            }
        }
    }
    errors
}

fn read_doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/hostmem.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn doc_layouts_match_code() {
    let doc = parse_doc(&read_doc()).unwrap_or_else(|e| panic!("docs/hostmem.md: {e}"));
    let errors = compare(&doc, &code_layouts());
    assert!(errors.is_empty(), "spec drift:\n{}", errors.join("\n"));
}

#[test]
fn every_layout_is_found() {
    let doc = parse_doc(&read_doc()).expect("parse");
    assert_eq!(doc.len(), code_layouts().len());
    assert_eq!(doc["Config"].total, 256);
}

// The comparison must notice a change on either side alone.

#[test]
fn drift_in_doc_alone_is_detected() {
    let text = read_doc();
    let code = code_layouts();

    // A field renamed in the doc (the first such row is Notification.seq).
    let moved = text.replacen("| 16 | 8 | seq | le64 |", "| 16 | 8 | sequence | le64 |", 1);
    assert_ne!(moved, text);
    let doc = parse_doc(&moved).expect("still a valid table");
    assert!(!compare(&doc, &code).is_empty());

    // A size changed in the doc breaks the table's own arithmetic.
    let resized = text.replacen("Total size: 72 bytes.", "Total size: 76 bytes.", 1);
    assert!(parse_doc(&resized).is_err());

    // A table removed from the doc.
    let removed = text.replacen("#### Layout: CompletionWord", "#### Not a layout", 1);
    let doc = parse_doc(&removed).expect("parse");
    assert!(!compare(&doc, &code).is_empty());
}

#[test]
fn drift_in_code_alone_is_detected() {
    let doc = parse_doc(&read_doc()).expect("parse");

    let mut code = code_layouts();
    code.get_mut("Event").expect("Event").total += 8;
    assert!(!compare(&doc, &code).is_empty());

    let mut code = code_layouts();
    let entry = code.get_mut("SubdeviceEntry").expect("entry");
    entry.fields[3].offset += 1;
    assert!(!compare(&doc, &code).is_empty());

    let mut code = code_layouts();
    code.get_mut("Notification").expect("n").fields.pop();
    assert!(!compare(&doc, &code).is_empty());

    let mut code = code_layouts();
    code.insert("NewStruct".into(), Layout { total: 4, fields: vec![] });
    assert!(!compare(&doc, &code).is_empty());
}

/// The status-code table in §8.3 lists exactly the `Status` enum.
#[test]
fn status_table_matches_enum() {
    let text = read_doc();
    let mut in_table = false;
    let mut doc = Vec::new();
    for line in text.lines() {
        if line.starts_with("| value | name | meaning |") {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            let row = cells(line);
            if is_separator(&row) {
                continue;
            }
            doc.push((row[0].parse::<u32>().expect("value"), row[1].clone()));
        }
    }
    let code: Vec<(u32, String)> =
        Status::ALL.iter().map(|s| (u32::from(*s), upper_snake(&format!("{s:?}")))).collect();
    assert_eq!(doc, code);
}

fn upper_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}
