//! The codec demo's clip, defined once for the build script that embeds it
//! and the guest that plays it.
//!
//! A clip blob is: a [`HEADER_SIZE`]-byte header (`b"TPCLIP01"`, frame
//! count, width, height, channels, all little-endian u32), then one
//! [`ENTRY_SIZE`]-byte entry per frame (offset and length of its QOI bytes
//! within the blob, and the [`digest`] of its decoded pixels), then the QOI
//! data. The guest reads it with [`Clip::parse`], which checks every offset.

#![cfg_attr(not(feature = "std"), no_std)]

/// The blob's first eight bytes.
pub const MAGIC: &[u8; 8] = b"TPCLIP01";
/// Bytes of the header: magic, then four little-endian u32s (frame count, width, height,
/// channels).
pub const HEADER_SIZE: usize = 24;
/// Bytes of one frame's entry: QOI offset, QOI length and pixel digest, little-endian
/// u64s.
pub const ENTRY_SIZE: usize = 24;

/// FNV-1a, 64 bit: a digest of decoded pixels that the guest can compute
/// cheaply (verification against the build-time reference decoder, not a
/// security measure).
pub fn digest(bytes: &[u8]) -> u64 {
    let mut digest = Digest::new();
    digest.update(bytes);
    digest.finish()
}

/// [`digest`] over data that arrives in pieces (the guest hashes decoded
/// pixels straight out of the shared region, a chunk at a time).
#[derive(Clone, Copy, Debug)]
pub struct Digest(u64);

impl Digest {
    /// A digest of no bytes yet (the FNV-1a offset basis).
    pub const fn new() -> Self {
        Digest(0xcbf2_9ce4_8422_2325)
    }

    /// Adds `bytes` to the digest.
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The digest of everything added.
    pub fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a clip blob was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClipError {
    /// The blob does not start with [`MAGIC`].
    BadMagic,
    /// The blob ends inside its header or entry table.
    Truncated,
    /// Frame `index`'s bytes are outside the blob.
    BadEntry {
        /// The frame's index.
        index: u32,
    },
}

impl core::fmt::Display for ClipError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClipError::BadMagic => f.write_str("not a clip (bad magic)"),
            ClipError::Truncated => f.write_str("clip truncated"),
            ClipError::BadEntry { index } => write!(f, "frame {index} lies outside the clip"),
        }
    }
}

fn u32_at(bytes: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(offset..offset + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], offset: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(offset..offset + 8)?.try_into().ok()?))
}

/// A parsed clip blob.
#[derive(Clone, Copy, Debug)]
pub struct Clip<'a> {
    blob: &'a [u8],
    /// Frames in the clip.
    pub frames: u32,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Bytes per pixel: 3 (RGB) or 4 (RGBA).
    pub channels: u32,
}

/// One frame of a clip.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The frame's QOI-encoded bytes.
    pub qoi: &'a [u8],
    /// [`digest`] of the decoded pixels.
    pub digest: u64,
}

impl<'a> Clip<'a> {
    /// Reads the header and checks every frame's entry against the blob (see [`Clip::frame`]).
    pub fn parse(blob: &'a [u8]) -> Result<Self, ClipError> {
        if blob.get(..8) != Some(&MAGIC[..]) {
            return Err(ClipError::BadMagic);
        }
        let field = |offset| u32_at(blob, offset).ok_or(ClipError::Truncated);
        let clip = Clip { blob, frames: field(8)?, width: field(12)?, height: field(16)?, channels: field(20)? };
        for index in 0..clip.frames {
            clip.frame(index)?;
        }
        Ok(clip)
    }

    /// Frame `index`, with its bounds checked.
    pub fn frame(&self, index: u32) -> Result<Frame<'a>, ClipError> {
        let entry = (index as usize).checked_mul(ENTRY_SIZE).and_then(|o| o.checked_add(HEADER_SIZE));
        let entry = entry.ok_or(ClipError::Truncated)?;
        let offset = u64_at(self.blob, entry).ok_or(ClipError::Truncated)?;
        let len = u64_at(self.blob, entry + 8).ok_or(ClipError::Truncated)?;
        let digest = u64_at(self.blob, entry + 16).ok_or(ClipError::Truncated)?;
        let start = usize::try_from(offset).map_err(|_| ClipError::BadEntry { index })?;
        let end =
            usize::try_from(len).ok().and_then(|len| start.checked_add(len)).ok_or(ClipError::BadEntry { index })?;
        let qoi = self.blob.get(start..end).ok_or(ClipError::BadEntry { index })?;
        Ok(Frame { qoi, digest })
    }

    /// Decoded size of one frame in bytes.
    pub fn frame_pixels_len(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.channels)
    }
}

#[cfg(feature = "std")]
mod generate;
#[cfg(feature = "std")]
pub use generate::*;
