#![no_main]
// A decoded request run through the whole server side against a fake record.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(request) = stb_protocol::RecoverRequest::decode(data) {
        let secret = stb_protocol::ServerSecret::from_bytes([7; 32]);
        let _ = stb_protocol::eke::answer(&request, None, &secret, &mut stb_protocol::os_rng());
    }
});
