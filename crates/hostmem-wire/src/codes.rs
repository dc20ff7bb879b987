//! Enumerated codes: config-queue opcodes, status codes, event types.
//!
//! On the wire these are plain `le32` fields (a peer can send anything), so
//! each enum converts from `u32` fallibly and never by a cast.

use crate::WireError;

/// Declares a `#[repr(u32)]` enum with a checked `TryFrom<u32>` and a
/// lossless `From<Enum> for u32`, so the value list is written once.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident (unknown: $err:ident) {
            $( $(#[$vmeta:meta])* $variant:ident = $value:expr, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every defined value, in numeric order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
        }

        impl TryFrom<u32> for $name {
            type Error = WireError;

            fn try_from(value: u32) -> Result<Self, WireError> {
                match value {
                    $( $value => Ok(Self::$variant), )+
                    other => Err(WireError::$err(other)),
                }
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> u32 {
                value as u32
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// Config-queue request opcodes (docs/hostmem.md §8.2). Zero is not an
    /// opcode so that a zeroed buffer is never a valid request.
    pub enum Opcode (unknown: UnknownOpcode) {
        /// Create an instance on a sub-device.
        Create = 1,
        /// Destroy an instance.
        Destroy = 2,
        /// Read one sub-device entry by index.
        QuerySubdevice = 3,
        /// Do nothing but answer; echoes `cookie`.
        Ping = 4,
    }
}

wire_enum! {
    /// Status codes of config-queue responses and events (docs/hostmem.md
    /// §8.3).
    pub enum Status (unknown: UnknownStatus) {
        /// Success.
        Ok = 0,
        /// No sub-device at that index.
        UnknownSubdevice = 1,
        /// Every instance slot is in use, or the sub-device is exclusive and
        /// already has an instance.
        NoFreeInstance = 2,
        /// The instance does not exist or is not the one the queue belongs to.
        BadInstance = 3,
        /// An offset/size lies outside the region, overflows, is misaligned
        /// or overlaps a range it must not.
        BadRange = 4,
        /// Malformed request: short buffer, wrong direction, non-zero
        /// reserved field, undefined flag.
        BadRequest = 5,
        /// Unknown opcode, or a feature the request needs was not negotiated.
        Unsupported = 6,
        /// The device failed internally; the request had no effect.
        DeviceError = 7,
        /// A notification's `seq` is not above the previous one.
        BadSequence = 8,
        /// The data in the region is invalid for the sub-device (e.g. a
        /// corrupt compressed frame).
        BadInput = 9,
        /// The result does not fit in the space the driver gave.
        NoSpace = 10,
    }
}

wire_enum! {
    /// Event types (docs/hostmem.md §9.2).
    pub enum EventType (unknown: UnknownEventType) {
        /// A notification completed successfully.
        Completion = 1,
        /// A notification failed; `status` says why.
        Error = 2,
        /// The device can no longer serve the instance: it discards the
        /// instance's notifications from then on, but the id stays
        /// allocated until the driver sends DESTROY for it.
        InstanceLost = 3,
    }
}

impl Status {
    /// `Ok(())` for [`Status::Ok`], otherwise the status as an error.
    pub const fn into_result(self) -> Result<(), WireError> {
        match self {
            Self::Ok => Ok(()),
            other => Err(WireError::Failed(other)),
        }
    }
}
