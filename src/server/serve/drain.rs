//! Closing a listening socket without resetting connections.
//!
//! Closing a listener resets every connection the kernel completed but the
//! server had not accepted yet. A proxy in front (nginx) has already sent
//! its request on such a connection, so it answers 502 instead of trying
//! the other instance, which it does only for a connection that was
//! refused. So shutdown first makes the socket ignore new connection
//! attempts (a filter that drops SYN segments: the client tries again a
//! second later and is then refused), then accepts the connections the
//! kernel still completes for a moment, and only then closes.

use std::io;

use tokio::net::TcpListener;

/// After new attempts are ignored: long enough for every handshake under
/// way to complete (one round trip), short enough not to delay shutdown.
pub const DRAIN: std::time::Duration = std::time::Duration::from_millis(100);

/// After the last connection is accepted: time for it to send its request
/// (a proxy writes it right after connecting; a busy machine may take a
/// while to read it).
pub const FIRST_REQUEST: std::time::Duration = std::time::Duration::from_millis(200);

/// Makes `listener` drop connection attempts (segments with SYN set) from
/// now on; segments that complete handshakes under way still pass.
#[cfg(target_os = "linux")]
pub fn ignore_new_connections(listener: &TcpListener) -> io::Result<()> {
    use socket2::{SockFilter, SockRef};
    // Classic BPF on the TCP header (where a TCP socket's filter starts):
    // load the flags byte, drop the segment if SYN is set, else keep it.
    const LOAD_BYTE_ABSOLUTE: u16 = 0x10 | 0x20; // BPF_LD | BPF_B | BPF_ABS
    const JUMP_IF_BITS_SET: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
    const RETURN: u16 = 0x06; // BPF_RET | BPF_K
    const TCP_FLAGS_OFFSET: u32 = 13;
    const SYN: u32 = 0x02;
    let program = [
        SockFilter::new(LOAD_BYTE_ABSOLUTE, 0, 0, TCP_FLAGS_OFFSET),
        SockFilter::new(JUMP_IF_BITS_SET, 0, 1, SYN),
        SockFilter::new(RETURN, 0, 0, 0),
        SockFilter::new(RETURN, 0, 0, u32::MAX),
    ];
    SockRef::from(listener).attach_filter(&program)
}

/// Elsewhere the listener is closed as it is.
#[cfg(not(target_os = "linux"))]
pub fn ignore_new_connections(_listener: &TcpListener) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "socket filters are Linux-only",
    ))
}
