//! The codec demo: guest images that play a QOI clip through the hostmem
//! device's codec sub-device. The images are this package's examples
//! (`codec_demo`, `codec_bench`, sharing `examples/common/codec_client.rs`);
//! build.rs generates the clip they embed and links them with the runtime's
//! linker script. The library itself is empty: Cargo wants one target that
//! is not an example.
#![no_std]
