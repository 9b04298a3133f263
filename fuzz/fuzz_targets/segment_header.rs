#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { let _ = stb_protocol::SegmentHeader::decode(data); });
