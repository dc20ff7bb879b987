//! What the hostmem device sends the driver after probing, through the
//! driver's pure checks (src/hostmem/validate.rs) and the wire checks it
//! relies on: config-queue responses, events, completion words, CREATE
//! answers, used lengths and the codec's results (DECODE_INLINE chains and
//! output-slot headers).
//!
//! Input: a selector byte, then the fields of that check (see each
//! function). Checked: nothing panics, and every value a check accepts
//! satisfies what the driver then relies on (the instance is live and has a
//! queue, `seq` was sent, ranges are inside the region, lengths inside the
//! buffer); a used length is never trusted past the buffer (clamping it
//! changes no result).

use hostmem_wire::codec::{FRAME_HEADER_SIZE, FrameInfo, check_inline_result, pixels_size};
use hostmem_wire::zerocopy::{FromBytes, IntoBytes};
use hostmem_wire::{
    ConfigResponse, EventType, FIRST_NOTIFY_QUEUE, MAX_INSTANCES_LIMIT, Request, Status, SubdeviceEntry, check_range,
};
use tidepool::hostmem::{
    EventKind, HostmemError, InstanceView, check_completion_value, check_created, check_event, check_response,
    clamp_used,
};

use crate::input::Input;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 6 {
        0 => response(&mut input),
        1 => event(&mut input),
        2 => completion_words(&mut input),
        3 => created(&mut input),
        4 => inline_result(&mut input),
        _ => slot_header(&mut input),
    }
}

/// `max_instances` as the driver has it: from a validated config.
fn max_instances(input: &mut Input<'_>) -> u32 {
    1 + input.u32() % MAX_INSTANCES_LIMIT
}

fn request(input: &mut Input<'_>) -> Request {
    match input.u8() % 4 {
        0 => {
            let subdevice_index = input.u32();
            let completion_offset = input.bool().then(|| input.u64());
            Request::Create { subdevice_index, completion_offset }
        }
        1 => Request::Destroy { instance_id: input.u32() },
        2 => Request::QuerySubdevice { subdevice_index: input.u32() },
        _ => Request::Ping { cookie: input.u64() },
    }
}

/// Request, max_instances, known entry (flag + 40 bytes), used length,
/// then the response buffer (the rest; the driver's is 72 bytes).
fn response(input: &mut Input<'_>) {
    let request = request(input);
    let max = max_instances(input);
    let known = input.bool().then(|| SubdeviceEntry::read_from_bytes(&input.array::<40>()).unwrap());
    let used_len = input.u32();
    let buffer = input.rest();
    let result = check_response(buffer, used_len, &request, max, known.as_ref());
    // The used length counts only up to the buffer's end.
    let clamped = clamp_used(used_len, buffer.len());
    assert!(clamped <= buffer.len());
    let again = check_response(buffer, clamped as u32, &request, max, known.as_ref());
    assert_eq!(format!("{result:?}"), format!("{again:?}"), "a used length past the buffer changed the result");
    match result {
        Ok(response) => {
            assert!(clamped >= size_of::<ConfigResponse>(), "a response of {clamped} bytes accepted");
            assert_eq!(response.as_bytes(), &buffer[..size_of::<ConfigResponse>()], "response not read as written");
            assert_eq!(response.status().ok(), Some(Status::Ok));
            assert_eq!(response.opcode.get(), u32::from(request.opcode()));
            assert_eq!(response.reserved.get(), 0);
            match request {
                Request::Create { subdevice_index, .. } => {
                    let id = response.instance_id.get();
                    assert!(id < max, "CREATE answered with instance {id} of {max}");
                    assert_eq!(response.notify_queue.get(), FIRST_NOTIFY_QUEUE + id);
                    assert_eq!(response.subdevice_index.get(), subdevice_index);
                    assert!(response.subdevice.validate(subdevice_index).is_ok(), "CREATE's entry invalid");
                    if let Some(known) = &known {
                        assert_eq!(&response.subdevice, known, "CREATE's entry differs from config space");
                    }
                }
                Request::Destroy { instance_id } => assert_eq!(response.instance_id.get(), instance_id),
                Request::QuerySubdevice { subdevice_index } => {
                    assert_eq!(response.subdevice_index.get(), subdevice_index);
                    assert!(response.subdevice.validate(subdevice_index).is_ok(), "queried entry invalid");
                    if let Some(known) = &known {
                        assert_eq!(&response.subdevice, known, "queried entry differs from config space");
                    }
                }
                Request::Ping { cookie } => assert_eq!(response.cookie.get(), cookie),
            }
        }
        Err(HostmemError::Refused { opcode, status }) => {
            assert_eq!(opcode, request.opcode());
            assert_ne!(status, Status::Ok, "refused with OK");
            let failure = ConfigResponse::failure(u32::from(opcode), status);
            assert_eq!(&buffer[..size_of::<ConfigResponse>()], failure.as_bytes(), "refusal with junk accepted");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// max_instances, the live instance (id, region length, last seq sent),
/// used length, then the event buffer (the rest; the driver's is 80).
fn event(input: &mut Input<'_>) {
    let max = max_instances(input);
    let live = input.u32();
    let view = InstanceView { region_len: input.u64(), last_sent: input.u64() };
    let used_len = input.u32();
    let buffer = input.rest();
    let lookup = |id: u32| (id == live).then_some(view);
    let result = check_event(buffer, used_len, max, lookup);
    let again = check_event(buffer, clamp_used(used_len, buffer.len()) as u32, max, lookup);
    assert_eq!(format!("{result:?}"), format!("{again:?}"), "a used length past the buffer changed the result");
    let event = match result {
        Ok(event) => event,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let wire = hostmem_wire::Event::read_from_bytes(&buffer[..size_of::<hostmem_wire::Event>()]).unwrap();
    assert!(clamp_used(used_len, buffer.len()) >= size_of::<hostmem_wire::Event>(), "short event accepted");
    assert!(event.instance_id == live && live < max, "event for instance {} accepted", event.instance_id);
    assert!(event.seq <= view.last_sent, "event for seq {} never sent ({})", event.seq, view.last_sent);
    assert_eq!(event.dropped, wire.dropped.get());
    assert_eq!(event.metadata, wire.metadata);
    match event.kind {
        EventKind::Completion => {
            assert_eq!(wire.event_type().ok(), Some(EventType::Completion));
            assert!(event.seq != 0, "COMPLETION of seq 0 accepted");
            assert!(check_range(view.region_len, event.offset, event.size).is_ok(), "result outside the region");
        }
        EventKind::Error(status) => {
            assert_eq!(wire.event_type().ok(), Some(EventType::Error));
            assert_ne!(status, Status::Ok, "ERROR with OK accepted");
        }
        EventKind::InstanceLost(status) => {
            assert_eq!(wire.event_type().ok(), Some(EventType::InstanceLost));
            assert_ne!(status, Status::Ok, "INSTANCE_LOST with OK accepted");
        }
    }
}

/// last seq sent, then the word values the driver reads one after another.
fn completion_words(input: &mut Input<'_>) {
    let instance = input.u32();
    let last_sent = input.u64();
    let mut last_seen = 0u64;
    while !input.is_empty() {
        // Small steps as often as wild values: words near the last one.
        let value = if input.bool() { last_seen.wrapping_add(u64::from(input.u8())) } else { input.u64() };
        match check_completion_value(instance, value, last_seen, last_sent) {
            Ok(()) => {
                assert!(value >= last_seen && value <= last_sent, "word {value} after {last_seen} (sent {last_sent})");
                last_seen = value;
            }
            Err(error) => {
                assert!(value < last_seen || value > last_sent, "word {value} refused: {error}");
            }
        }
    }
}

fn created(input: &mut Input<'_>) {
    let (instance_id, queues, live) = (input.u32(), input.u32(), input.bool());
    let result = check_created(instance_id, queues, live);
    assert_eq!(result.is_ok(), instance_id < queues && !live, "check_created: {result:?}");
}

/// seq, used length, then the device-writable buffer of a DECODE_INLINE
/// chain as the device left it (the rest).
fn inline_result(input: &mut Input<'_>) {
    let seq = input.u64();
    let used_len = input.u32();
    let output = input.rest();
    // As the driver hands it over: clamped (Hostmem::complete_with_buffers).
    let used = clamp_used(used_len, output.len());
    match check_inline_result(output, used as u64, seq) {
        Ok(info) => {
            let pixels = info.pixels_size.get();
            assert_eq!(pixels_size(info.width.get(), info.height.get(), info.channels), Some(pixels));
            assert_eq!(FRAME_HEADER_SIZE + pixels, used as u64, "used length is not header + pixels");
            assert_eq!(info.seq.get(), seq);
            assert_eq!(info.status.get(), u32::from(Status::Ok));
            assert_eq!(info.as_bytes(), &output[..FRAME_HEADER_SIZE as usize]);
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// seq, output slot capacity, then the slot's header (32 bytes) as the
/// codec client reads it after a DECODE completes.
fn slot_header(input: &mut Input<'_>) {
    let seq = input.u64();
    let capacity = input.u64();
    let header = input.rest();
    let Ok(info) = FrameInfo::read(header) else {
        assert!(header.len() < FRAME_HEADER_SIZE as usize, "a whole header refused");
        return;
    };
    if info.check(seq, capacity).is_ok() {
        let pixels = info.pixels_size.get();
        assert_eq!(pixels_size(info.width.get(), info.height.get(), info.channels), Some(pixels));
        assert!(FRAME_HEADER_SIZE.checked_add(pixels).is_some_and(|end| end <= capacity), "pixels past the slot");
        assert_eq!(info.seq.get(), seq);
    }
}
