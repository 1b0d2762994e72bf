//! An RTT up-channel read through the GDB remote serial protocol: any GDB
//! server (QEMU's gdbstub, OpenOCD, pyOCD, a J-Link GDB server) becomes a
//! byte source without a debug probe library.
//!
//! The firmware's `_SEGGER_RTT` control block is found from the ELF symbol
//! table; its up-channel descriptors are read with `m addr,len`, new bytes
//! between the read and write offsets are read, and the read offset is
//! written back with `M` so the target can reuse the space. Between polls the
//! target runs (`c`); a poll interrupts it (Ctrl-C, `0x03`) and waits for the
//! stop reply, because QEMU's gdbstub only answers while the guest is
//! stopped. Started with `qemu-system-arm … -gdb tcp::PORT -S`, the guest
//! waits at reset until this source continues it.
//!
//! The stream ends (EOF) when the target exits (`W`/`X` reply) or the server
//! closes the connection; bytes still in the channel then are lost, which is
//! why memscope's firmware examples wait for the channel to drain before they
//! exit.

use std::io::{self, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Largest memory read per `m` packet: QEMU accepts bigger ones, other
/// servers (OpenOCD) announce smaller packet sizes; 1 KiB suits all.
const MAX_READ: usize = 1024;

/// Where and how to find the channel.
#[derive(Clone, Debug)]
pub struct GdbRttConfig {
    /// Address of the `_SEGGER_RTT` control block.
    pub control_block: u64,
    /// Pointer width of the target in bytes (4 on Cortex-M).
    pub pointer_width: usize,
    /// The up-channel to read, by name (memscope's is `memscope`).
    pub channel: ChannelSelector,
    /// How long the target runs between two polls.
    pub poll: Duration,
    /// How long to wait for the control block to be initialised by the
    /// firmware, and for any single reply of the server.
    pub timeout: Duration,
}

/// Which up-channel to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelSelector {
    /// The channel with this name.
    Name(String),
    /// The channel with this index.
    Index(usize),
}

impl GdbRttConfig {
    /// Reads `_SEGGER_RTT`'s address and the pointer width from the ELF at
    /// `elf`; selects the `memscope` channel, polls every 2 ms.
    pub fn from_elf(elf: &Path) -> io::Result<GdbRttConfig> {
        let data = std::fs::read(elf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", elf.display())))?;
        let (control_block, pointer_width) = find_control_block(&data).map_err(|msg| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {msg}", elf.display()),
            )
        })?;
        Ok(GdbRttConfig {
            control_block,
            pointer_width,
            channel: ChannelSelector::Name("memscope".into()),
            poll: Duration::from_millis(2),
            timeout: Duration::from_secs(10),
        })
    }
}

/// The address of `_SEGGER_RTT` and the pointer width, from an ELF image.
pub fn find_control_block(elf: &[u8]) -> Result<(u64, usize), String> {
    use object::{Object, ObjectSymbol};
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF file ({e})"))?;
    let width = if file.is_64() { 8 } else { 4 };
    file.symbols()
        .find(|s| s.name() == Ok("_SEGGER_RTT"))
        .map(|s| (s.address(), width))
        .ok_or_else(|| {
            "no `_SEGGER_RTT` symbol: the firmware has no RTT control block (rtt-target's rtt_init!), \
             or the ELF is stripped"
                .to_string()
        })
}

/// A GDB remote serial protocol connection (acknowledged mode).
struct Remote {
    name: String,
    out: TcpStream,
    input: BufReader<TcpStream>,
    /// A `$` was read while waiting for an acknowledgement.
    pending_dollar: bool,
}

/// What came back for a command.
enum Reply {
    /// A packet's data.
    Data(Vec<u8>),
    /// The target exited (`W`/`X`) or the server hung up.
    Gone,
}

impl Remote {
    fn connect(addr: &str, timeout: Duration) -> io::Result<Remote> {
        let out = TcpStream::connect(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("gdb {addr}: cannot connect ({e}); is the GDB server running (qemu … -gdb tcp::PORT)?")))?;
        out.set_nodelay(true)?;
        out.set_read_timeout(Some(timeout))?;
        let input = BufReader::new(out.try_clone()?);
        Ok(Remote {
            name: format!("gdb {addr}"),
            out,
            input,
            pending_dollar: false,
        })
    }

    fn err(&self, kind: io::ErrorKind, msg: impl std::fmt::Display) -> io::Error {
        io::Error::new(kind, format!("{}: {msg}", self.name))
    }

    /// Sends `$data#cs` and waits for the `+` acknowledgement (resending on `-`).
    fn send(&mut self, data: &str) -> io::Result<bool> {
        let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
        let packet = format!("${data}#{sum:02x}");
        for _ in 0..3 {
            if self.out.write_all(packet.as_bytes()).is_err() {
                return Ok(false);
            }
            match self.byte()? {
                Some(b'+') => return Ok(true),
                Some(b'-') => continue,
                // A stray packet start before the ack (a stop reply racing our
                // command): the ack is implied by the reply that follows.
                Some(b'$') => {
                    self.pending_dollar = true;
                    return Ok(true);
                }
                Some(other) => {
                    return Err(self.err(
                        io::ErrorKind::InvalidData,
                        format!("expected an acknowledgement, got byte {other:#04x}"),
                    ))
                }
                None => return Ok(false),
            }
        }
        Err(self.err(
            io::ErrorKind::InvalidData,
            "the server rejected a packet three times",
        ))
    }

    /// One byte, `None` at end of stream.
    fn byte(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8];
        match self.input.read(&mut b) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(b[0])),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Err(self.err(
                    io::ErrorKind::TimedOut,
                    "no reply from the GDB server in time",
                ))
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.err(e.kind(), e)),
        }
    }

    /// Reads the next packet, acknowledging it; `None` at end of stream.
    fn packet(&mut self) -> io::Result<Option<Vec<u8>>> {
        if !std::mem::take(&mut self.pending_dollar) {
            loop {
                match self.byte()? {
                    None => return Ok(None),
                    Some(b'$') => break,
                    // Acks of earlier packets and noise between packets.
                    Some(_) => continue,
                }
            }
        }
        let mut raw = Vec::new();
        loop {
            match self.byte()? {
                None => return Ok(None),
                Some(b'#') => break,
                Some(b) => raw.push(b),
            }
        }
        let (Some(h), Some(l)) = (self.byte()?, self.byte()?) else {
            return Ok(None);
        };
        let sum = raw.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        let ok = hex_val(h).zip(hex_val(l)).map(|(h, l)| h << 4 | l) == Some(sum);
        // A lost ack is harmless: a write failure here shows on the next send.
        let _ = self.out.write_all(if ok { b"+" } else { b"-" });
        if !ok {
            return Err(self.err(io::ErrorKind::InvalidData, "packet with a bad checksum"));
        }
        Ok(Some(unescape(&raw)))
    }

    /// Sends a command and returns its reply, skipping stop replies that
    /// arrive in between (QEMU answers a packet that stopped the guest with
    /// a stop reply as well).
    fn command(&mut self, cmd: &str) -> io::Result<Reply> {
        if !self.send(cmd)? {
            return Ok(Reply::Gone);
        }
        loop {
            let Some(p) = self.packet()? else {
                return Ok(Reply::Gone);
            };
            match p.first() {
                Some(b'W' | b'X') => return Ok(Reply::Gone),
                Some(b'T' | b'S') if !cmd.starts_with('?') => continue,
                _ => return Ok(Reply::Data(p)),
            }
        }
    }

    /// Waits for a stop reply after `c` + interrupt; `false` when the target is gone.
    fn wait_stop(&mut self) -> io::Result<bool> {
        loop {
            let Some(p) = self.packet()? else {
                return Ok(false);
            };
            match p.first() {
                Some(b'T' | b'S') => return Ok(true),
                Some(b'W' | b'X') => return Ok(false),
                // `O` console output and anything else while running.
                _ => continue,
            }
        }
    }

    fn read_mem(&mut self, addr: u64, len: usize) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = (len - out.len()).min(MAX_READ);
            let at = addr + out.len() as u64;
            let Reply::Data(d) = self.command(&format!("m{at:x},{n:x}"))? else {
                return Ok(None);
            };
            if d.first() == Some(&b'E') && d.len() == 3 {
                return Err(self.err(
                    io::ErrorKind::InvalidData,
                    format!(
                        "cannot read {n} bytes at {at:#x} ({})",
                        String::from_utf8_lossy(&d)
                    ),
                ));
            }
            let bytes = decode_hex(&d).ok_or_else(|| {
                self.err(io::ErrorKind::InvalidData, "memory read reply is not hex")
            })?;
            if bytes.is_empty() {
                return Err(self.err(
                    io::ErrorKind::InvalidData,
                    format!("empty memory read at {at:#x}"),
                ));
            }
            out.extend_from_slice(&bytes);
        }
        out.truncate(len);
        Ok(Some(out))
    }

    fn write_mem(&mut self, addr: u64, bytes: &[u8]) -> io::Result<bool> {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        match self.command(&format!("M{addr:x},{:x}:{hex}", bytes.len()))? {
            Reply::Gone => Ok(false),
            Reply::Data(d) if d == b"OK" => Ok(true),
            Reply::Data(d) => Err(self.err(
                io::ErrorKind::InvalidData,
                format!(
                    "cannot write the RTT read offset at {addr:#x} ({})",
                    String::from_utf8_lossy(&d)
                ),
            )),
        }
    }

    /// Resumes the target; `false` when it is gone.
    fn resume(&mut self) -> io::Result<bool> {
        self.send("c")
    }

    /// Stops a running target; `false` when it is gone.
    fn interrupt(&mut self) -> io::Result<bool> {
        if self.out.write_all(&[0x03]).is_err() {
            return Ok(false);
        }
        self.wait_stop()
    }
}

/// The RTT up-channel as a byte stream. See the [module docs](self).
pub struct GdbRtt {
    remote: Remote,
    config: GdbRttConfig,
    /// Address of the channel descriptor, once found.
    channel: Option<Channel>,
    pending: Vec<u8>,
    pos: usize,
    running: bool,
    done: bool,
}

#[derive(Clone, Copy, Debug)]
struct Channel {
    /// Address of the descriptor.
    desc: u64,
    buffer: u64,
    size: u64,
}

impl GdbRtt {
    /// Connects to the GDB server at `addr` (`host:port`) and stops the target.
    pub fn connect(addr: &str, config: GdbRttConfig) -> io::Result<GdbRtt> {
        let mut remote = Remote::connect(addr, config.timeout)?;
        // QEMU stops the guest when a debugger attaches; `?` asks why it
        // stopped, which also works as a handshake with any server.
        match remote.command("?")? {
            Reply::Gone => {
                return Err(remote.err(io::ErrorKind::UnexpectedEof, "the target is gone already"))
            }
            Reply::Data(_) => {}
        }
        Ok(GdbRtt {
            remote,
            config,
            channel: None,
            pending: Vec::new(),
            pos: 0,
            running: false,
            done: false,
        })
    }

    /// Lets the target run for one poll interval and stops it again.
    fn run_a_little(&mut self) -> io::Result<bool> {
        if !self.remote.resume()? {
            return Ok(false);
        }
        self.running = true;
        thread::sleep(self.config.poll);
        let alive = self.remote.interrupt()?;
        self.running = !alive && self.running;
        Ok(alive)
    }

    fn word(&self, bytes: &[u8], at: usize) -> u64 {
        let w = self.config.pointer_width;
        let mut v = [0u8; 8];
        v[..w].copy_from_slice(&bytes[at..at + w]);
        u64::from_le_bytes(v)
    }

    /// Looks for the configured channel in an initialised control block.
    fn find_channel(&mut self) -> io::Result<Option<Option<Channel>>> {
        let w = self.config.pointer_width as u64;
        let cb = self.config.control_block;
        let Some(head) = self.remote.read_mem(cb, (16 + 2 * w) as usize)? else {
            return Ok(None);
        };
        if &head[..10] != b"SEGGER RTT" {
            return Ok(Some(None));
        }
        let max_up = self.word(&head, 16).min(64);
        let desc_len = 6 * w;
        for i in 0..max_up {
            let desc = cb + 16 + 2 * w + i * desc_len;
            let Some(d) = self.remote.read_mem(desc, desc_len as usize)? else {
                return Ok(None);
            };
            let (name_ptr, buffer, size) = (
                self.word(&d, 0),
                self.word(&d, w as usize),
                self.word(&d, 2 * w as usize),
            );
            if buffer == 0 || size == 0 {
                continue;
            }
            let selected = match &self.config.channel {
                ChannelSelector::Index(n) => *n as u64 == i,
                ChannelSelector::Name(want) => {
                    if name_ptr == 0 {
                        false
                    } else {
                        let Some(raw) = self.remote.read_mem(name_ptr, want.len() + 1)? else {
                            return Ok(None);
                        };
                        raw[..want.len()] == *want.as_bytes() && raw[want.len()] == 0
                    }
                }
            };
            if selected {
                return Ok(Some(Some(Channel { desc, buffer, size })));
            }
        }
        Err(self.remote.err(
            io::ErrorKind::NotFound,
            format!(
                "the RTT control block at {cb:#x} has no up-channel {:?}",
                self.config.channel
            ),
        ))
    }

    /// With the target stopped: reads what the channel holds and advances its
    /// read offset. `None` when the target is gone.
    fn drain(&mut self, ch: Channel) -> io::Result<Option<Vec<u8>>> {
        let w = self.config.pointer_width as u64;
        let Some(offs) = self.remote.read_mem(ch.desc + 3 * w, 2 * w as usize)? else {
            return Ok(None);
        };
        let (write, read) = (self.word(&offs, 0), self.word(&offs, w as usize));
        if write >= ch.size || read >= ch.size {
            return Err(self.remote.err(
                io::ErrorKind::InvalidData,
                format!(
                    "RTT channel offsets out of range (write {write}, read {read}, size {})",
                    ch.size
                ),
            ));
        }
        let mut out = Vec::new();
        let mut at = read;
        while at != write {
            let end = if write > at { write } else { ch.size };
            let Some(bytes) = self.remote.read_mem(ch.buffer + at, (end - at) as usize)? else {
                return Ok(None);
            };
            out.extend_from_slice(&bytes);
            at = if end == ch.size { 0 } else { end };
        }
        if at != read {
            let off = at.to_le_bytes();
            if !self.remote.write_mem(ch.desc + 4 * w, &off[..w as usize])? {
                return Ok(None);
            }
        }
        Ok(Some(out))
    }

    /// One poll; fills `pending` or sets `done`.
    fn poll(&mut self) -> io::Result<()> {
        let ch = match self.channel {
            Some(ch) => ch,
            None => {
                let started = Instant::now();
                loop {
                    match self.find_channel()? {
                        None => {
                            self.done = true;
                            return Ok(());
                        }
                        Some(Some(ch)) => break ch,
                        Some(None) if started.elapsed() > self.config.timeout => {
                            return Err(self.remote.err(
                                io::ErrorKind::TimedOut,
                                format!(
                                    "no RTT control block at {:#x} after {:?}: does the firmware call rtt_init!, and is the ELF the one running?",
                                    self.config.control_block, self.config.timeout
                                ),
                            ))
                        }
                        // Not initialised yet (the guest is still at reset).
                        Some(None) => {
                            if !self.run_a_little()? {
                                self.done = true;
                                return Ok(());
                            }
                        }
                    }
                }
            }
        };
        self.channel = Some(ch);
        match self.drain(ch)? {
            None => self.done = true,
            Some(bytes) if !bytes.is_empty() => {
                self.pending = bytes;
                self.pos = 0;
            }
            Some(_) => {
                if !self.run_a_little()? {
                    self.done = true;
                }
            }
        }
        Ok(())
    }
}

impl Read for GdbRtt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.pending.len() {
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            self.poll()?;
        }
        let n = buf.len().min(self.pending.len() - self.pos);
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for GdbRtt {
    fn drop(&mut self) {
        // Leave the target running, detached, unless it is gone already.
        if !self.done && !self.running {
            let _ = self.remote.send("D");
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn decode_hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| Some(hex_val(p[0])? << 4 | hex_val(p[1])?))
        .collect()
}

/// Undoes the protocol's `}` escapes and `*` run-length encoding.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'}' if i + 1 < raw.len() => {
                out.push(raw[i + 1] ^ 0x20);
                i += 2;
            }
            b'*' if i + 1 < raw.len() && !out.is_empty() => {
                let repeat = raw[i + 1].saturating_sub(29) as usize;
                let last = *out.last().unwrap_or(&0);
                out.extend(std::iter::repeat_n(last, repeat));
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const BASE: u64 = 0x2000_0000;
    const BUF: u64 = BASE + 0x100;
    const SIZE: u64 = 64;

    /// A GDB server over a fake 32-bit target whose RTT channel 1
    /// ("memscope") receives one chunk each time the target runs; after the
    /// last chunk the next `c` makes it exit (`W00`).
    fn fake_target(chunks: Vec<Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            let (sock, _) = listener.accept().unwrap();
            let mut out = sock.try_clone().unwrap();
            let mut input = BufReader::new(sock);
            let mut mem = vec![0u8; 0x400];
            let mut chunks = chunks.into_iter();
            let mut initialised = false;
            let send = |out: &mut TcpStream, data: &str| {
                let sum = data.bytes().fold(0u8, |a, b| a.wrapping_add(b));
                out.write_all(format!("${data}#{sum:02x}").as_bytes())
                    .unwrap();
            };
            let le = |mem: &[u8], at: u64| {
                let i = (at - BASE) as usize;
                u32::from_le_bytes(mem[i..i + 4].try_into().unwrap()) as u64
            };
            let put = |mem: &mut Vec<u8>, at: u64, v: u32| {
                let i = (at - BASE) as usize;
                mem[i..i + 4].copy_from_slice(&v.to_le_bytes());
            };
            loop {
                let mut b = [0u8];
                if input.read(&mut b).unwrap_or(0) == 0 {
                    return;
                }
                if b[0] != b'$' {
                    continue; // acks, and 0x03 when nothing runs
                }
                let mut pkt = Vec::new();
                loop {
                    input.read_exact(&mut b).unwrap();
                    if b[0] == b'#' {
                        break;
                    }
                    pkt.push(b[0]);
                }
                let mut cs = [0u8; 2];
                input.read_exact(&mut cs).unwrap();
                out.write_all(b"+").unwrap();
                let pkt = String::from_utf8(pkt).unwrap();
                match pkt.as_bytes()[0] {
                    b'?' => send(&mut out, "S05"),
                    b'm' => {
                        let (a, n) = pkt[1..].split_once(',').unwrap();
                        let (a, n) = (
                            u64::from_str_radix(a, 16).unwrap(),
                            usize::from_str_radix(n, 16).unwrap(),
                        );
                        let i = (a - BASE) as usize;
                        let hex: String =
                            mem[i..i + n].iter().map(|b| format!("{b:02x}")).collect();
                        send(&mut out, &hex);
                    }
                    b'M' => {
                        let (head, data) = pkt[1..].split_once(':').unwrap();
                        let a = u64::from_str_radix(head.split_once(',').unwrap().0, 16).unwrap();
                        let i = (a - BASE) as usize;
                        let bytes = decode_hex(data.as_bytes()).unwrap();
                        mem[i..i + bytes.len()].copy_from_slice(&bytes);
                        send(&mut out, "OK");
                    }
                    b'c' => {
                        // The target runs: it initialises RTT, or writes a
                        // chunk, or exits.
                        if !initialised {
                            mem[..16].copy_from_slice(b"SEGGER RTT\0\0\0\0\0\0");
                            put(&mut mem, BASE + 16, 2);
                            for (i, (name, buf)) in
                                [(0x200u32, 0x300u32), (0x210, 0x100)].iter().enumerate()
                            {
                                let d = BASE + 24 + 24 * i as u64;
                                put(&mut mem, d, BASE as u32 + name);
                                put(&mut mem, d + 4, BASE as u32 + buf);
                                put(&mut mem, d + 8, SIZE as u32);
                            }
                            mem[0x200..0x206].copy_from_slice(b"defmt\0");
                            mem[0x210..0x219].copy_from_slice(b"memscope\0");
                            initialised = true;
                        } else if let Some(chunk) = chunks.next() {
                            let desc = BASE + 48;
                            let mut w = le(&mem, desc + 12);
                            for byte in chunk {
                                mem[(BUF - BASE + w) as usize] = byte;
                                w = (w + 1) % SIZE;
                            }
                            put(&mut mem, desc + 12, w as u32);
                        } else {
                            send(&mut out, "W00");
                            return;
                        }
                        // Wait for the interrupt, then report the stop.
                        loop {
                            input.read_exact(&mut b).unwrap();
                            if b[0] == 0x03 {
                                break;
                            }
                        }
                        send(&mut out, "T02thread:01;");
                    }
                    b'D' => {
                        send(&mut out, "OK");
                        return;
                    }
                    _ => send(&mut out, ""),
                }
            }
        });
        addr
    }

    fn config() -> GdbRttConfig {
        GdbRttConfig {
            control_block: BASE,
            pointer_width: 4,
            channel: ChannelSelector::Name("memscope".into()),
            poll: Duration::from_millis(1),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn drains_the_channel_across_wraps_until_the_target_exits() {
        let chunks: Vec<Vec<u8>> = (0..7u8)
            .map(|i| (0..40 + i).map(|j| i.wrapping_mul(31) ^ j).collect())
            .collect();
        let expected: Vec<u8> = chunks.concat();
        let mut src = GdbRtt::connect(&fake_target(chunks), config()).unwrap();
        let mut got = Vec::new();
        src.read_to_end(&mut got).unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn a_missing_channel_is_named_in_the_error() {
        let mut cfg = config();
        cfg.channel = ChannelSelector::Name("nope".into());
        let mut src = GdbRtt::connect(&fake_target(vec![]), cfg).unwrap();
        let err = src.read(&mut [0u8; 16]).unwrap_err();
        assert!(
            err.to_string().contains("no up-channel Name(\"nope\")"),
            "{err}"
        );
    }

    #[test]
    fn the_protocol_escapes_are_undone() {
        assert_eq!(unescape(b"a}\x03b"), b"a#b");
        assert_eq!(unescape(b"0* "), b"0000");
        assert_eq!(decode_hex(b"00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex(b"0g"), None);
    }

    #[test]
    fn the_control_block_comes_from_the_elf_symbol_table() {
        let err = find_control_block(b"not an elf").unwrap_err();
        assert!(err.contains("not an ELF"), "{err}");
    }
}
