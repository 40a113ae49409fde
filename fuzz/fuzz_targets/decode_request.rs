//! Arbitrary bytes as a client's byte stream: frame splitting, the connect handshake
//! and every request decoder must never panic, and whatever decodes must re-encode to
//! bytes that decode to the same value.

#![no_main]

use ensemble_server::protocol::{
    fuzz_decode, split_frame, ConnectRequest, FrameStatus, Record, Request, DEFAULT_MAX_FRAME,
};
use libfuzzer_sys::fuzz_target;

const PREFIX: usize = 4;

fuzz_target!(|data: &[u8]| {
    // Every decoder, as the server meets them (and as replies of every opcode).
    fuzz_decode(data);

    let mut rest = data;
    let mut first = true;
    while let FrameStatus::Frame { body_len } = split_frame(rest, DEFAULT_MAX_FRAME) {
        let body = &rest[PREFIX..PREFIX + body_len];
        if first {
            if let Ok(connect) = ConnectRequest::from_bytes(body) {
                assert_eq!(
                    ConnectRequest::from_bytes(&connect.to_bytes()),
                    Ok(connect)
                );
            }
            first = false;
        } else if let Ok((header, request)) = Request::decode(body) {
            let frame = request.encode_frame(header.xid);
            assert_eq!(
                Request::decode(&frame[PREFIX..]),
                Ok((header, request)),
                "a decoded request re-encodes to the same request"
            );
        }
        rest = &rest[PREFIX + body_len..];
    }
});
