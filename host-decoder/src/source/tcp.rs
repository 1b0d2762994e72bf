//! A raw TCP byte stream: OpenOCD's `rtt server start PORT CHANNEL` or a
//! J-Link RTT telnet port, which forward one RTT up-channel's bytes as they
//! come. The stream ends when the server closes the connection.

use std::io::{self, Read};
use std::net::TcpStream;

/// What a J-Link RTT telnet port says first, before any channel byte.
const JLINK_BANNER: &[u8] = b"SEGGER J-Link";

/// The bytes of a TCP connection, minus a J-Link greeting line if the server
/// sends one (it would otherwise show up as one damaged frame).
pub struct TcpRtt {
    stream: TcpStream,
    /// Bytes read while looking for the banner, not yet handed out.
    head: Vec<u8>,
    pos: usize,
    checked_banner: bool,
}

impl TcpRtt {
    /// Connects to `addr` (`host:port`).
    pub fn connect(addr: &str) -> io::Result<TcpRtt> {
        let stream = TcpStream::connect(addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("tcp {addr}: cannot connect ({e}); start the RTT server first (OpenOCD: `rtt server start {port} 1`)",
                    port = addr.rsplit(':').next().unwrap_or("PORT")),
            )
        })?;
        Ok(TcpRtt::new(stream))
    }

    /// Wraps a connected stream.
    pub fn new(stream: TcpStream) -> TcpRtt {
        TcpRtt {
            stream,
            head: Vec::new(),
            pos: 0,
            checked_banner: false,
        }
    }

    /// Reads until it is clear whether the stream starts with the J-Link
    /// banner, and drops the banner line if so.
    fn check_banner(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 256];
        loop {
            let could_be_banner =
                JLINK_BANNER.starts_with(&self.head[..self.head.len().min(JLINK_BANNER.len())]);
            if !could_be_banner {
                break;
            }
            if self.head.len() >= JLINK_BANNER.len() {
                match self.head.windows(2).position(|w| w == b"\r\n") {
                    Some(i) => {
                        self.head.drain(..i + 2);
                        break;
                    }
                    // A banner line longer than 4 KiB is no banner.
                    None if self.head.len() > 4096 => break,
                    None => {}
                }
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            self.head.extend_from_slice(&buf[..n]);
        }
        self.checked_banner = true;
        Ok(())
    }
}

impl Read for TcpRtt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.checked_banner {
            self.check_banner()?;
        }
        if self.pos < self.head.len() {
            let n = buf.len().min(self.head.len() - self.pos);
            buf[..n].copy_from_slice(&self.head[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        match self.stream.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(0),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn serve(bytes: &'static [u8]) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            // In two writes, so the banner check has to read more than once.
            s.write_all(&bytes[..bytes.len() / 2]).unwrap();
            s.flush().unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            s.write_all(&bytes[bytes.len() / 2..]).unwrap();
        });
        addr
    }

    #[test]
    fn passes_bytes_through_until_the_server_closes() {
        let mut out = Vec::new();
        TcpRtt::connect(&serve(b"\x02\x01\x00\x03ab\x00"))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"\x02\x01\x00\x03ab\x00");
    }

    #[test]
    fn drops_a_jlink_banner() {
        let mut out = Vec::new();
        TcpRtt::connect(&serve(
            b"SEGGER J-Link V7.94 - Real time terminal output\r\n\x02\x01\x00",
        ))
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
        assert_eq!(out, b"\x02\x01\x00");
    }
}
