//! Spec-drift test: every `#### Layout: X` table in docs/hostmem.md must
//! match the Rust struct X field by field (name, offset, size) and in total
//! size, and every wire struct must have a table. Likewise every
//! `#### Values: X` table (opcodes, status codes, event types, feature
//! bits, flag bits, constants) must list exactly the values the code has,
//! and the prose that repeats them must agree. The doc and the code can
//! therefore not change alone.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use hostmem_wire::zerocopy::FromZeros;
use hostmem_wire::{
    COMPLETION_WORD_ALIGN, CONFIG_MAX_ENTRIES, CONFIG_SIZE, CompletionWord, Config, ConfigRequest, ConfigResponse,
    Event, EventType, LAYOUT_VERSION, MAGIC, MAX_INSTANCES_LIMIT, Notification, Opcode, REGION_ALIGN, SHMID_MAX,
    Status, SubdeviceEntry, codec, echo, feature,
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

// ---- values tables ----

/// A values table: (value, name) rows, as written.
type Values = Vec<(u64, String)>;

const VALUE_HEADERS: [[&str; 3]; 2] = [["value", "name", "meaning"], ["bit", "name", "meaning"]];

/// Parses every `#### Values: X` table: a header row (value or bit, name,
/// meaning), then rows of a number (decimal or 0x hex) and a name.
fn parse_values(doc: &str) -> Result<BTreeMap<String, Values>, String> {
    let mut tables: BTreeMap<String, Values> = BTreeMap::new();
    let mut current: Option<(String, bool)> = None;
    let finish = |current: &Option<(String, bool)>, tables: &BTreeMap<String, Values>| -> Result<(), String> {
        match current {
            Some((name, _)) if tables.get(name).is_none_or(Vec::is_empty) => Err(format!("{name}: no rows")),
            _ => Ok(()),
        }
    };
    for line in doc.lines() {
        if line.starts_with('#') {
            finish(&current, &tables)?;
            current = None;
            if let Some(name) = line.strip_prefix("#### Values: ") {
                let name = name.trim().to_string();
                if tables.insert(name.clone(), Vec::new()).is_some() {
                    return Err(format!("{name}: two values tables"));
                }
                current = Some((name, false));
            }
            continue;
        }
        let Some((name, saw_header)) = current.as_mut() else { continue };
        if !line.starts_with('|') {
            // Prose after the table ends it.
            if !line.trim().is_empty() && tables.get(name.as_str()).is_some_and(|rows| !rows.is_empty()) {
                finish(&current, &tables)?;
                current = None;
            }
            continue;
        }
        let row = cells(line);
        if !*saw_header {
            if !VALUE_HEADERS.iter().any(|h| row == h) {
                return Err(format!("{name}: values header is {row:?}, expected one of {VALUE_HEADERS:?}"));
            }
            *saw_header = true;
            continue;
        }
        if is_separator(&row) {
            continue;
        }
        if row.len() != 3 {
            return Err(format!("{name}: row {row:?} does not have 3 cells"));
        }
        let value = parse_u64(&row[0]).ok_or(format!("{name}: value {:?} is not a number", row[0]))?;
        if let Some(rows) = tables.get_mut(name.as_str()) {
            rows.push((value, row[1].clone()));
        }
    }
    finish(&current, &tables)?;
    Ok(tables)
}

fn parse_u64(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Bit number of a one-bit flag mask.
fn bit(mask: u32) -> u64 {
    assert_eq!(mask.count_ones(), 1, "flag mask {mask:#x} is not one bit");
    u64::from(mask.trailing_zeros())
}

fn named<T: Copy + std::fmt::Debug + Into<u32>>(all: &[T]) -> Values {
    all.iter().map(|v| (u64::from((*v).into()), upper_snake(&format!("{v:?}")))).collect()
}

/// Feature bits the code defines, by their spec names.
const FEATURES: [(u32, &str); 4] = [
    (feature::COMPLETION_WORD, "VIRTIO_HOSTMEM_F_COMPLETION_WORD"),
    (feature::EVENT_SUPPRESS, "VIRTIO_HOSTMEM_F_EVENT_SUPPRESS"),
    (feature::VERSION_1, "VIRTIO_F_VERSION_1"),
    (feature::ACCESS_PLATFORM, "VIRTIO_F_ACCESS_PLATFORM"),
];

/// One struct's flags in the code: (values table, FLAGS_KNOWN, each flag's
/// mask and spec name).
type CodeFlags = (&'static str, u32, Vec<(u32, &'static str)>);

/// Flag bits the code defines per struct.
fn code_flags() -> [CodeFlags; 4] {
    [
        (
            "SubdeviceEntry.flags",
            SubdeviceEntry::FLAGS_KNOWN,
            vec![(SubdeviceEntry::F_EXCLUSIVE, "SUBDEVICE_F_EXCLUSIVE")],
        ),
        (
            "ConfigRequest.flags",
            ConfigRequest::FLAGS_KNOWN,
            vec![(ConfigRequest::F_COMPLETION_WORD, "CREATE_F_COMPLETION_WORD")],
        ),
        ("Notification.flags", Notification::FLAGS_KNOWN, vec![(Notification::F_EVENT, "NOTIFY_F_EVENT")]),
        ("Event.flags", Event::FLAGS_KNOWN, vec![(Event::F_OVERFLOW, "EVENT_F_OVERFLOW")]),
    ]
}

/// Every values table as the code has it.
fn code_values() -> BTreeMap<String, Values> {
    let mut m = BTreeMap::new();
    m.insert("Status".to_string(), named(Status::ALL));
    m.insert("Opcode".to_string(), named(Opcode::ALL));
    m.insert("EventType".to_string(), named(EventType::ALL));
    m.insert("Feature".to_string(), FEATURES.iter().map(|&(b, n)| (u64::from(b), n.to_string())).collect());
    for (table, _, flags) in code_flags() {
        m.insert(table.to_string(), flags.iter().map(|&(mask, n)| (bit(mask), n.to_string())).collect());
    }
    let constants = [
        (u64::from(MAGIC), "MAGIC"),
        (u64::from(LAYOUT_VERSION), "LAYOUT_VERSION"),
        (CONFIG_SIZE as u64, "CONFIG_SIZE"),
        (CONFIG_MAX_ENTRIES as u64, "CONFIG_MAX_ENTRIES"),
        (u64::from(MAX_INSTANCES_LIMIT), "MAX_INSTANCES_LIMIT"),
        (u64::from(SHMID_MAX), "SHMID_MAX"),
        (REGION_ALIGN, "REGION_ALIGN"),
        (COMPLETION_WORD_ALIGN, "COMPLETION_WORD_ALIGN"),
    ];
    m.insert("Constants".to_string(), constants.iter().map(|&(v, n)| (v, n.to_string())).collect());
    m
}

/// Every difference between the doc's values tables and the code's.
fn compare_values(doc: &BTreeMap<String, Values>, code: &BTreeMap<String, Values>) -> Vec<String> {
    let mut errors = Vec::new();
    for name in code.keys().filter(|n| !doc.contains_key(*n)) {
        errors.push(format!("{name}: code values have no '#### Values: {name}' table"));
    }
    for name in doc.keys().filter(|n| !code.contains_key(*n)) {
        errors.push(format!("{name}: values table has no counterpart in the drift test"));
    }
    for (name, d) in doc {
        let Some(c) = code.get(name) else { continue };
        let (mut d, mut c) = (d.clone(), c.clone());
        d.sort();
        c.sort();
        for row in d.iter().filter(|r| !c.contains(r)) {
            errors.push(format!("{name}: doc has {} = {:#x}, code does not", row.1, row.0));
        }
        for row in c.iter().filter(|r| !d.contains(r)) {
            errors.push(format!("{name}: code has {} = {:#x}, doc does not", row.1, row.0));
        }
    }
    errors
}

/// The meaning cell of `field` in `#### Layout: table`.
fn layout_meaning<'a>(doc: &'a str, table: &str, field: &str) -> Option<&'a str> {
    let heading = format!("#### Layout: {table}");
    let mut inside = false;
    for line in doc.lines() {
        if line.starts_with('#') {
            inside = line.trim() == heading;
            continue;
        }
        if inside && line.starts_with('|') {
            let cells: Vec<&str> = line.trim().trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() == 5 && cells[2] == field {
                return Some(cells[4]);
            }
        }
    }
    None
}

/// Where the spec repeats values in prose, the prose must agree with the
/// values tables:
/// - list items `- **NAME** (N): ...` (opcodes §8.2, event types §9.2);
/// - "NAME N, NAME N." in the meaning of `ConfigRequest.opcode` and
///   `Event.event_type`;
/// - "Bit N NAME" (or "bit N NAME") in the meaning of every layout's
///   `flags` field;
/// - the limits in the meaning of `Config.entries_present` and
///   `Config.max_instances`.
fn prose_errors(doc: &str, values: &BTreeMap<String, Values>) -> Vec<String> {
    let mut errors = Vec::new();
    let lookup = |table: &str, name: &str| -> Option<u64> {
        values.get(table)?.iter().find(|(_, n)| n == name).map(|(v, _)| *v)
    };
    let mut listed = BTreeMap::<&str, Values>::new();
    for line in doc.lines() {
        let Some(rest) = line.strip_prefix("- **") else { continue };
        let Some((name, rest)) = rest.split_once("** (") else { continue };
        let Some((value, _)) = rest.split_once(')') else { continue };
        let Some(value) = parse_u64(value) else { continue };
        let table = ["Opcode", "EventType"].into_iter().find(|t| lookup(t, name).is_some());
        match table {
            Some(table) => listed.entry(table).or_default().push((value, name.to_string())),
            None => errors.push(format!("list item **{name}** ({value}) names no opcode or event type")),
        }
    }
    for (table, layout, field) in [("Opcode", "ConfigRequest", "opcode"), ("EventType", "Event", "event_type")] {
        let mut expected = values.get(table).cloned().unwrap_or_default();
        expected.sort();
        let mut items = listed.remove(table).unwrap_or_default();
        items.sort();
        if items != expected {
            errors.push(format!("{table}: list items {items:?} != values table {expected:?}"));
        }
        let Some(meaning) = layout_meaning(doc, layout, field) else {
            errors.push(format!("{layout}.{field}: no layout row"));
            continue;
        };
        let mut inline: Values = Vec::new();
        for pair in meaning.trim_end_matches('.').split(", ") {
            match pair.rsplit_once(' ').and_then(|(name, value)| Some((parse_u64(value)?, name.to_string()))) {
                Some(row) => inline.push(row),
                None => errors.push(format!("{layout}.{field}: cannot read {pair:?} as 'NAME value'")),
            }
        }
        inline.sort();
        if inline != expected {
            errors.push(format!("{layout}.{field}: meaning lists {inline:?}, values table {expected:?}"));
        }
    }
    for (table, _, _) in code_flags() {
        let Some((layout, field)) = table.split_once('.') else { continue };
        let Some(meaning) = layout_meaning(doc, layout, field) else {
            errors.push(format!("{table}: no layout row"));
            continue;
        };
        let mut mentioned: Values = Vec::new();
        let mut words = meaning.split_whitespace();
        while let Some(word) = words.next() {
            if word.eq_ignore_ascii_case("bit")
                && let Some(value) = words.next().and_then(parse_u64)
                && let Some(name) = words.next()
            {
                mentioned.push((value, name.trim_end_matches([':', '.']).to_string()));
            }
        }
        let mut expected = values.get(table).cloned().unwrap_or_default();
        expected.sort();
        mentioned.sort();
        if mentioned != expected {
            errors.push(format!("{table}: layout meaning says {mentioned:?}, values table {expected:?}"));
        }
    }
    let limits = [
        ("entries_present", "CONFIG_MAX_ENTRIES", "min(num_subdevices, {})"),
        ("max_instances", "MAX_INSTANCES_LIMIT", "1 ..= {}."),
    ];
    for (field, constant, pattern) in limits {
        let Some(value) = lookup("Constants", constant) else {
            errors.push(format!("Constants: no {constant}"));
            continue;
        };
        let text = pattern.replace("{}", &value.to_string());
        if !layout_meaning(doc, "Config", field).is_some_and(|m| m.contains(&text)) {
            errors.push(format!("Config.{field}: meaning does not say {text:?} ({constant})"));
        }
    }
    errors
}

#[test]
fn doc_values_match_code() {
    let doc = parse_values(&read_doc()).unwrap_or_else(|e| panic!("docs/hostmem.md: {e}"));
    let errors = compare_values(&doc, &code_values());
    assert!(errors.is_empty(), "spec drift:\n{}", errors.join("\n"));
}

#[test]
fn every_values_table_is_found() {
    let doc = parse_values(&read_doc()).expect("parse");
    let names: Vec<&str> = doc.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "ConfigRequest.flags",
            "Constants",
            "Event.flags",
            "EventType",
            "Feature",
            "Notification.flags",
            "Opcode",
            "Status",
            "SubdeviceEntry.flags",
        ]
    );
    assert_eq!(doc["Status"].len(), Status::ALL.len());
    assert_eq!(doc["Constants"].len(), 8);
}

#[test]
fn doc_prose_matches_values_tables() {
    let text = read_doc();
    let doc = parse_values(&text).expect("parse");
    let errors = prose_errors(&text, &doc);
    assert!(errors.is_empty(), "spec drift:\n{}", errors.join("\n"));
}

/// The code's own lists are complete: every flag bit a struct accepts and
/// every device-specific feature bit is one the drift test compares.
#[test]
fn code_flag_and_feature_lists_are_complete() {
    for (table, known, flags) in code_flags() {
        let all = flags.iter().fold(0, |acc, (mask, _)| acc | mask);
        assert_eq!(known, all, "{table}: FLAGS_KNOWN has bits the drift test does not list");
    }
    let device_specific = FEATURES.iter().filter(|(b, _)| *b < 24).fold(0, |acc, (b, _)| acc | feature::mask(*b));
    assert_eq!(device_specific, feature::DEVICE_SPECIFIC_MASK);
}

/// Each check must notice a changed value on either side alone.
#[test]
fn value_drift_is_detected() {
    let text = read_doc();
    let code = code_values();
    let base = parse_values(&text).expect("parse");
    assert!(compare_values(&base, &code).is_empty());
    assert!(prose_errors(&text, &base).is_empty());

    // A value changed in a values table: the comparison with the code fails.
    for (from, to) in [
        ("| 2 | DESTROY |", "| 5 | DESTROY |"),
        ("| 3 | INSTANCE_LOST |", "| 4 | INSTANCE_LOST |"),
        ("| 4 | BAD_RANGE |", "| 11 | BAD_RANGE |"),
        ("| 1 | VIRTIO_HOSTMEM_F_EVENT_SUPPRESS |", "| 2 | VIRTIO_HOSTMEM_F_EVENT_SUPPRESS |"),
        ("| 0 | NOTIFY_F_EVENT |", "| 1 | NOTIFY_F_EVENT |"),
        ("| 0 | EVENT_F_OVERFLOW |", "| 3 | EVENT_F_OVERFLOW |"),
        ("| 0 | CREATE_F_COMPLETION_WORD |", "| 2 | CREATE_F_COMPLETION_WORD |"),
        ("| 0 | SUBDEVICE_F_EXCLUSIVE |", "| 1 | SUBDEVICE_F_EXCLUSIVE |"),
        ("| 6 | CONFIG_MAX_ENTRIES |", "| 7 | CONFIG_MAX_ENTRIES |"),
        ("| 1022 | MAX_INSTANCES_LIMIT |", "| 1023 | MAX_INSTANCES_LIMIT |"),
    ] {
        let changed = text.replacen(from, to, 1);
        assert_ne!(changed, text, "{from:?} not in the doc");
        let doc = parse_values(&changed).expect("still a valid table");
        assert!(!compare_values(&doc, &code).is_empty(), "{from:?} -> {to:?} not detected");
    }
    // A table removed.
    let removed = text.replacen("#### Values: EventType", "#### Not values", 1);
    assert!(!compare_values(&parse_values(&removed).expect("parse"), &code).is_empty());

    // Prose that disagrees with the tables.
    for (from, to) in [
        ("- **PING** (4)", "- **PING** (5)"),
        ("- **INSTANCE_LOST** (3)", "- **INSTANCE_LOST** (4)"),
        ("CREATE 1, DESTROY 2,", "CREATE 1, DESTROY 3,"),
        ("COMPLETION 1, ERROR 2,", "COMPLETION 1, ERROR 5,"),
        ("Bit 0 NOTIFY_F_EVENT", "Bit 1 NOTIFY_F_EVENT"),
        ("Bit 0 SUBDEVICE_F_EXCLUSIVE", "Bit 2 SUBDEVICE_F_EXCLUSIVE"),
        ("1 ..= 1022.", "1 ..= 1000."),
        ("min(num_subdevices, 6)", "min(num_subdevices, 8)"),
    ] {
        let changed = text.replacen(from, to, 1);
        assert_ne!(changed, text, "{from:?} not in the doc");
        let doc = parse_values(&changed).expect("parse");
        assert!(!prose_errors(&changed, &doc).is_empty(), "{from:?} -> {to:?} not detected");
    }

    // A value changed in the code alone.
    let mut changed = code_values();
    changed.get_mut("Opcode").expect("Opcode")[0].0 = 9;
    assert!(!compare_values(&base, &changed).is_empty());
    let mut changed = code_values();
    changed.get_mut("Constants").expect("Constants").push((7, "NEW_LIMIT".into()));
    assert!(!compare_values(&base, &changed).is_empty());
    let mut changed = code_values();
    changed.get_mut("Event.flags").expect("flags")[0].0 = 1;
    assert!(!compare_values(&base, &changed).is_empty());
    let mut changed = code_values();
    changed.remove("Feature");
    assert!(!compare_values(&base, &changed).is_empty());
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
