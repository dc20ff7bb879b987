//! Config-queue requests and responses (docs/hostmem.md §8).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::short;
use crate::{FIRST_NOTIFY_QUEUE, Opcode, Status, SubdeviceEntry, WireError, check_completion_word};

/// A config-queue request (layout: docs/hostmem.md §8.1, `ConfigRequest`).
/// One fixed-size struct for every opcode; fields an opcode does not use are
/// zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ConfigRequest {
    /// An [`Opcode`].
    pub opcode: U32,
    /// DESTROY: the instance.
    pub instance_id: U32,
    /// CREATE, QUERY_SUBDEVICE: the sub-device index.
    pub subdevice_index: U32,
    /// CREATE: `ConfigRequest::F_*` bits.
    pub flags: U32,
    /// CREATE with [`ConfigRequest::F_COMPLETION_WORD`]: offset of the
    /// completion word in the region.
    pub completion_offset: U64,
    /// PING: echoed in the response.
    pub cookie: U64,
}

const _: () = assert!(core::mem::size_of::<ConfigRequest>() == 32);

/// A config-queue request, decoded and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Create an instance of sub-device `subdevice_index`, with a completion
    /// word at `completion_offset` in its region if given.
    Create {
        /// Sub-device index.
        subdevice_index: u32,
        /// Completion word offset within the region.
        completion_offset: Option<u64>,
    },
    /// Destroy instance `instance_id`.
    Destroy {
        /// The instance.
        instance_id: u32,
    },
    /// Read the entry of sub-device `subdevice_index`.
    QuerySubdevice {
        /// Sub-device index.
        subdevice_index: u32,
    },
    /// Answer with `cookie`.
    Ping {
        /// Echoed value.
        cookie: u64,
    },
}

impl ConfigRequest {
    /// CREATE: `completion_offset` is valid.
    pub const F_COMPLETION_WORD: u32 = 1 << 0;
    /// Flag bits this revision defines.
    pub const FLAGS_KNOWN: u32 = Self::F_COMPLETION_WORD;

    /// Reads the request at the start of the device-readable buffer.
    pub fn read(bytes: &[u8]) -> Result<Self, WireError> {
        Self::read_from_prefix(bytes).map(|(req, _)| req).map_err(|_| short::<Self>(bytes.len()))
    }

    /// `opcode` of a request that may be cut short: the field if `bytes`
    /// holds all of it, so a device can echo it in a failure response.
    pub fn peek_opcode(bytes: &[u8]) -> Option<u32> {
        crate::message::peek::<U32>(bytes, core::mem::offset_of!(Self, opcode)).map(U32::get)
    }

    /// Decodes the request: known opcode, known flags, and every field the
    /// opcode does not use zero. The device answers a failure with
    /// [`WireError::status`].
    pub fn decode(&self) -> Result<Request, WireError> {
        let opcode = Opcode::try_from(self.opcode.get())?;
        let instance_id = self.instance_id.get();
        let subdevice_index = self.subdevice_index.get();
        let flags = self.flags.get();
        let completion_offset = self.completion_offset.get();
        let cookie = self.cookie.get();

        // Each opcode lists the fields it uses; all others must be zero so a
        // later revision can give them meaning.
        let zero = |value: u64, field: &'static str| {
            if value == 0 { Ok(()) } else { Err(WireError::NonZeroField { field }) }
        };
        match opcode {
            Opcode::Create => {
                let unknown = flags & !Self::FLAGS_KNOWN;
                if unknown != 0 {
                    return Err(WireError::UnknownFlags { field: "ConfigRequest.flags", bits: unknown });
                }
                zero(instance_id.into(), "ConfigRequest.instance_id")?;
                zero(cookie, "ConfigRequest.cookie")?;
                let completion_offset = if flags & Self::F_COMPLETION_WORD != 0 {
                    Some(completion_offset)
                } else {
                    zero(completion_offset, "ConfigRequest.completion_offset")?;
                    None
                };
                Ok(Request::Create { subdevice_index, completion_offset })
            }
            Opcode::Destroy => {
                zero(subdevice_index.into(), "ConfigRequest.subdevice_index")?;
                zero(flags.into(), "ConfigRequest.flags")?;
                zero(completion_offset, "ConfigRequest.completion_offset")?;
                zero(cookie, "ConfigRequest.cookie")?;
                Ok(Request::Destroy { instance_id })
            }
            Opcode::QuerySubdevice => {
                zero(instance_id.into(), "ConfigRequest.instance_id")?;
                zero(flags.into(), "ConfigRequest.flags")?;
                zero(completion_offset, "ConfigRequest.completion_offset")?;
                zero(cookie, "ConfigRequest.cookie")?;
                Ok(Request::QuerySubdevice { subdevice_index })
            }
            Opcode::Ping => {
                zero(instance_id.into(), "ConfigRequest.instance_id")?;
                zero(subdevice_index.into(), "ConfigRequest.subdevice_index")?;
                zero(flags.into(), "ConfigRequest.flags")?;
                zero(completion_offset, "ConfigRequest.completion_offset")?;
                Ok(Request::Ping { cookie })
            }
        }
    }
}

impl Request {
    /// The opcode of this request.
    pub const fn opcode(&self) -> Opcode {
        match self {
            Self::Create { .. } => Opcode::Create,
            Self::Destroy { .. } => Opcode::Destroy,
            Self::QuerySubdevice { .. } => Opcode::QuerySubdevice,
            Self::Ping { .. } => Opcode::Ping,
        }
    }

    /// The wire form, with unused fields zero.
    pub fn encode(&self) -> ConfigRequest {
        let mut req = ConfigRequest::new_zeroed();
        req.opcode = U32::new(self.opcode().into());
        match *self {
            Self::Create { subdevice_index, completion_offset } => {
                req.subdevice_index = U32::new(subdevice_index);
                if let Some(offset) = completion_offset {
                    req.flags = U32::new(ConfigRequest::F_COMPLETION_WORD);
                    req.completion_offset = U64::new(offset);
                }
            }
            Self::Destroy { instance_id } => req.instance_id = U32::new(instance_id),
            Self::QuerySubdevice { subdevice_index } => {
                req.subdevice_index = U32::new(subdevice_index);
            }
            Self::Ping { cookie } => req.cookie = U64::new(cookie),
        }
        req
    }

    /// Checks a CREATE's completion word against the sub-device's region
    /// (alignment and range); other requests pass.
    pub fn check_against(&self, entry: &SubdeviceEntry) -> Result<(), WireError> {
        match *self {
            Self::Create { completion_offset: Some(offset), .. } => {
                check_completion_word(entry.region_len.get(), offset)
            }
            _ => Ok(()),
        }
    }
}

impl From<Request> for ConfigRequest {
    fn from(request: Request) -> Self {
        request.encode()
    }
}

/// A config-queue response (layout: docs/hostmem.md §8.1,
/// `ConfigResponse`), written by the device into the device-writable buffer
/// of the request's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ConfigResponse {
    /// A [`Status`].
    pub status: U32,
    /// The request's opcode, echoed.
    pub opcode: U32,
    /// CREATE: the new instance; DESTROY: echoed.
    pub instance_id: U32,
    /// CREATE: `2 + instance_id`.
    pub notify_queue: U32,
    /// CREATE, QUERY_SUBDEVICE: echoed.
    pub subdevice_index: U32,
    /// Zero.
    pub reserved: U32,
    /// PING: echoed.
    pub cookie: U64,
    /// CREATE, QUERY_SUBDEVICE: the sub-device's entry.
    pub subdevice: SubdeviceEntry,
}

const _: () = assert!(core::mem::size_of::<ConfigResponse>() == 72);

impl ConfigResponse {
    /// Reads the response the device wrote. `used_len` is the length the
    /// device reported in the used ring; anything short of a whole response
    /// is rejected rather than read as zeros.
    pub fn read(bytes: &[u8], used_len: usize) -> Result<Self, WireError> {
        let got = used_len.min(bytes.len());
        let valid = bytes.get(..got).unwrap_or(&[]);
        Self::read_from_prefix(valid).map(|(resp, _)| resp).map_err(|_| short::<Self>(got))
    }

    /// A failure answer to a request with raw opcode `opcode`: everything
    /// but status and opcode zero.
    pub fn failure(opcode: u32, status: Status) -> Self {
        let mut resp = Self::new_zeroed();
        resp.status = U32::new(status.into());
        resp.opcode = U32::new(opcode);
        resp
    }

    /// Successful CREATE answer.
    pub fn created(subdevice_index: u32, subdevice: SubdeviceEntry, instance_id: u32) -> Result<Self, WireError> {
        let Some(notify_queue) = instance_id.checked_add(FIRST_NOTIFY_QUEUE) else {
            return Err(WireError::InstanceOutOfRange { instance_id, max_instances: crate::MAX_INSTANCES_LIMIT });
        };
        let mut resp = Self::new_zeroed();
        resp.opcode = U32::new(Opcode::Create.into());
        resp.instance_id = U32::new(instance_id);
        resp.notify_queue = U32::new(notify_queue);
        resp.subdevice_index = U32::new(subdevice_index);
        resp.subdevice = subdevice;
        Ok(resp)
    }

    /// Successful DESTROY answer.
    pub fn destroyed(instance_id: u32) -> Self {
        let mut resp = Self::new_zeroed();
        resp.opcode = U32::new(Opcode::Destroy.into());
        resp.instance_id = U32::new(instance_id);
        resp
    }

    /// Successful QUERY_SUBDEVICE answer.
    pub fn queried(subdevice_index: u32, subdevice: SubdeviceEntry) -> Self {
        let mut resp = Self::new_zeroed();
        resp.opcode = U32::new(Opcode::QuerySubdevice.into());
        resp.subdevice_index = U32::new(subdevice_index);
        resp.subdevice = subdevice;
        resp
    }

    /// Successful PING answer.
    pub fn pong(cookie: u64) -> Self {
        let mut resp = Self::new_zeroed();
        resp.opcode = U32::new(Opcode::Ping.into());
        resp.cookie = U64::new(cookie);
        resp
    }

    /// The status, decoded.
    pub fn status(&self) -> Result<Status, WireError> {
        Status::try_from(self.status.get())
    }

    /// Driver-side check of an answer to `request`: known OK status, opcode
    /// echoed, and the fields the opcode returns consistent with each other
    /// and with `max_instances`. A non-OK status becomes
    /// [`WireError::Failed`].
    pub fn check(&self, request: &Request, max_instances: u32) -> Result<(), WireError> {
        self.status()?.into_result()?;
        if self.opcode.get() != u32::from(request.opcode()) {
            return Err(WireError::Inconsistent { field: "ConfigResponse.opcode" });
        }
        if self.reserved.get() != 0 {
            return Err(WireError::NonZeroField { field: "ConfigResponse.reserved" });
        }
        match *request {
            Request::Create { subdevice_index, .. } => {
                let instance_id = self.instance_id.get();
                let expected_queue = crate::notify_queue(instance_id, max_instances)?;
                if self.notify_queue.get() != expected_queue {
                    return Err(WireError::Inconsistent { field: "ConfigResponse.notify_queue" });
                }
                if self.subdevice_index.get() != subdevice_index {
                    return Err(WireError::Inconsistent { field: "ConfigResponse.subdevice_index" });
                }
                self.subdevice.validate(subdevice_index)
            }
            Request::Destroy { instance_id } => {
                if self.instance_id.get() != instance_id {
                    return Err(WireError::InstanceMismatch { expected: instance_id, got: self.instance_id.get() });
                }
                Ok(())
            }
            Request::QuerySubdevice { subdevice_index } => {
                if self.subdevice_index.get() != subdevice_index {
                    return Err(WireError::Inconsistent { field: "ConfigResponse.subdevice_index" });
                }
                self.subdevice.validate(subdevice_index)
            }
            Request::Ping { cookie } => {
                if self.cookie.get() != cookie {
                    return Err(WireError::Inconsistent { field: "ConfigResponse.cookie" });
                }
                Ok(())
            }
        }
    }
}
