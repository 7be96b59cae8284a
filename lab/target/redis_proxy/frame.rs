//! The client side of Redis's protocol, read as a stream: the commands a
//! client sends (RESP arrays of bulk strings, and inline commands), one
//! complete frame at a time, from bytes that arrive in any pieces.
//!
//! Why a reader of our own and not a RESP library: the proxy must forward
//! every frame byte for byte (only a duplicated push is rewritten), resume a
//! frame split across reads without reading it again from its start, keep
//! nothing but the one frame not yet complete, and refuse what Redis itself
//! refuses, with the reason, instead of guessing. Replies are never read
//! here: the proxy copies them unparsed, which is what keeps RESP3 (maps,
//! push frames) working whatever it holds.
//!
//! The limits are Redis's own defaults: a bulk string of at most 512 MiB
//! (`proto-max-bulk-len`), an array of at most 1,048,576 elements, an inline
//! command of at most 64 KiB before its newline.

use std::ops::Range;

/// The longest bulk string Redis takes (`proto-max-bulk-len`, 512 MiB).
pub const MAX_BULK: usize = 512 * 1024 * 1024;

/// The most elements a command array may have (Redis's 1M limit).
pub const MAX_ARRAY: usize = 1024 * 1024;

/// The longest inline command Redis waits for without a newline (64 KiB).
pub const MAX_INLINE: usize = 64 * 1024;

/// The longest `*N` or `$N` line, CRLF included: a sign and 19 digits fit
/// with room to spare; anything longer is no length Redis would take.
const MAX_HEADER: usize = 32;

/// The most room the buffer keeps once the frames in it are handed out:
/// what a pipelined client fills in a read, not what its largest frame
/// needed.
const KEPT_ROOM: usize = 1024 * 1024;

/// Why a client's bytes are not a command Redis would take: its connection
/// is closed with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One complete command as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    raw: &'a [u8],
    args: &'a [Range<usize>],
    inline: bool,
}

impl<'a> Frame<'a> {
    /// The frame's bytes exactly as they came, to be forwarded as they are.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Whether it came as an inline command (`PING\r\n`), not an array.
    pub fn is_inline(&self) -> bool {
        self.inline
    }

    /// How many arguments it has, its name included (0 for `*0` or an
    /// empty line, which Redis ignores).
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether it has no arguments at all.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Its `i`-th argument (0 is the command's name). An inline command's
    /// arguments are its words split at whitespace, without Redis's quoting
    /// rules: enough to see which command it is, never rewritten.
    pub fn arg(&self, i: usize) -> Option<&'a [u8]> {
        self.args.get(i).map(|range| &self.raw[range.clone()])
    }

    /// Its arguments in order, its name first.
    pub fn args(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let raw = self.raw;
        self.args.iter().map(move |range| &raw[range.clone()])
    }

    /// Whether its name is `name` (ASCII, case-insensitive, as Redis reads
    /// command names).
    pub fn is_named(&self, name: &str) -> bool {
        self.arg(0)
            .is_some_and(|first| first.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// How far the frame being read has got, so that the next read resumes it
/// instead of reading it again from its start. Offsets are from the frame's
/// first byte.
#[derive(Debug, Default)]
struct Partial {
    /// The first byte not yet read.
    pos: usize,
    /// The array's length once its `*N` line is read (`None` before it, and
    /// for an inline command).
    count: Option<usize>,
    /// The length of the bulk string whose `$N` line is read and whose
    /// bytes are awaited.
    bulk: Option<usize>,
    /// The arguments read so far.
    args: Vec<Range<usize>>,
}

/// Reads client command frames from bytes as they arrive. Append what a
/// read gave to [`buffer`](Self::buffer), then take frames with
/// [`next_frame`](Self::next_frame) until it says it needs more.
#[derive(Debug, Default)]
pub struct CommandReader {
    buf: Vec<u8>,
    /// Where the frame being read starts in `buf`: everything before was
    /// handed out and is dropped at the next [`buffer`](Self::buffer).
    start: usize,
    partial: Partial,
    /// The arguments of the frame last handed out (kept to lend them).
    done: Vec<Range<usize>>,
}

impl CommandReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The buffer to append newly read bytes to. The frames handed out are
    /// dropped from it first, so it holds at most one partial frame and
    /// what was just read.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
            // A huge frame's room is given back once it is gone.
            if self.buf.capacity() > KEPT_ROOM && self.buf.len() < KEPT_ROOM / 2 {
                self.buf.shrink_to(KEPT_ROOM / 2);
            }
        }
        &mut self.buf
    }

    /// How many bytes are held that no frame handed out yet covers.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `None` if more bytes are needed, or why the
    /// bytes are no command (the connection should then be closed: nothing
    /// after a malformed frame can be read reliably).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, Malformed> {
        let bytes = &self.buf[self.start..];
        let Some(done) = step(bytes, &mut self.partial)? else {
            return Ok(None);
        };
        // The arguments move to `done` to be lent out; the next frame's are
        // read into the allocation `done` held.
        self.done.clear();
        std::mem::swap(&mut self.done, &mut self.partial.args);
        self.partial.pos = 0;
        self.partial.count = None;
        self.partial.bulk = None;
        let start = self.start;
        self.start += done.len;
        Ok(Some(Frame {
            raw: &self.buf[start..start + done.len],
            args: &self.done,
            inline: done.inline,
        }))
    }
}

/// A frame found complete: its length and kind.
struct Done {
    len: usize,
    inline: bool,
}

/// Reads on from `partial` in `bytes` (which start at the frame's first
/// byte): the frame if it is complete, `None` if it needs more bytes.
fn step(bytes: &[u8], partial: &mut Partial) -> Result<Option<Done>, Malformed> {
    let Some(&first) = bytes.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return inline(bytes, partial);
    }
    let count = match partial.count {
        Some(count) => count,
        None => {
            let Some((length, next)) = header(bytes, 0, "array")? else {
                return Ok(None);
            };
            // `*0` and `*-1` are commands of nothing, which Redis skips.
            let count = usize::try_from(length).unwrap_or(0);
            if count > MAX_ARRAY {
                return Err(Malformed(format!(
                    "an array of {count} elements, over Redis's limit of {MAX_ARRAY}"
                )));
            }
            partial.pos = next;
            partial.count = Some(count);
            count
        }
    };
    while partial.args.len() < count {
        let len = match partial.bulk {
            Some(len) => len,
            None => {
                match bytes.get(partial.pos) {
                    None => return Ok(None),
                    Some(b'$') => {}
                    Some(&other) => {
                        return Err(Malformed(format!(
                            "expected '$' for element {} of the array, got {}",
                            partial.args.len() + 1,
                            shown(other)
                        )))
                    }
                }
                let Some((length, next)) = header(bytes, partial.pos, "bulk")? else {
                    return Ok(None);
                };
                let len = usize::try_from(length)
                    .map_err(|_| Malformed(format!("a negative bulk length ({length})")))?;
                if len > MAX_BULK {
                    return Err(Malformed(format!(
                        "a bulk string of {len} bytes, over Redis's limit of {MAX_BULK} (512 MiB)"
                    )));
                }
                partial.pos = next;
                partial.bulk = Some(len);
                len
            }
        };
        let end = partial.pos + len;
        let Some(after) = bytes.get(end..end + 2) else {
            return Ok(None);
        };
        if after != b"\r\n" {
            return Err(Malformed(format!(
                "a bulk string of {len} bytes not followed by CRLF"
            )));
        }
        partial.args.push(partial.pos..end);
        partial.pos = end + 2;
        partial.bulk = None;
    }
    Ok(Some(Done {
        len: partial.pos,
        inline: false,
    }))
}

/// An inline command: one line of words, ended by `\n` (a `\r` before it
/// is dropped, as Redis drops it).
fn inline(bytes: &[u8], partial: &mut Partial) -> Result<Option<Done>, Malformed> {
    let from = partial.pos;
    let Some(at) = bytes[from..].iter().position(|&b| b == b'\n') else {
        if bytes.len() > MAX_INLINE {
            return Err(Malformed(format!(
                "an inline command of over {MAX_INLINE} bytes without a newline"
            )));
        }
        partial.pos = bytes.len();
        return Ok(None);
    };
    let newline = from + at;
    let line = &bytes[..newline];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut word: Option<usize> = None;
    for (i, byte) in line.iter().enumerate() {
        match (byte.is_ascii_whitespace(), word) {
            (false, None) => word = Some(i),
            (true, Some(start)) => {
                partial.args.push(start..i);
                word = None;
            }
            _ => {}
        }
    }
    if let Some(start) = word {
        partial.args.push(start..line.len());
    }
    Ok(Some(Done {
        len: newline + 1,
        inline: true,
    }))
}

/// Reads the `*N` or `$N` line at `at`: its number and where the line after
/// it starts, or `None` if the line is not complete yet.
fn header(bytes: &[u8], at: usize, what: &str) -> Result<Option<(i64, usize)>, Malformed> {
    let window = &bytes[at..bytes.len().min(at + MAX_HEADER)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if window.len() == MAX_HEADER {
            return Err(Malformed(format!(
                "{what} length line over {MAX_HEADER} bytes"
            )));
        }
        return Ok(None);
    };
    let Some(&lf) = window.get(cr + 1) else {
        return Ok(None);
    };
    if lf != b'\n' {
        return Err(Malformed(format!(
            "{what} length line ended by CR without LF"
        )));
    }
    let digits = &window[1..cr];
    let length = number(digits).ok_or_else(|| {
        Malformed(format!(
            "invalid {what} length {:?}",
            String::from_utf8_lossy(digits)
        ))
    })?;
    Ok(Some((length, at + cr + 2)))
}

/// A length as Redis reads one: an optional `-` and decimal digits, no `+`,
/// no spaces, no leading zeros.
fn number(digits: &[u8]) -> Option<i64> {
    let unsigned = digits.strip_prefix(b"-").unwrap_or(digits);
    let canonical = match unsigned {
        [] => false,
        [b'0'] => unsigned.len() == digits.len(),
        [b'0', ..] => false,
        _ => unsigned.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A byte for a message: itself if printable, else its escape.
fn shown(byte: u8) -> String {
    format!("{:?}", char::from(byte).escape_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A command's arguments as RESP sends it.
    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// What a frame is, owned, for comparisons.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        raw: Vec<u8>,
        args: Vec<Vec<u8>>,
        inline: bool,
    }

    /// Feeds `chunks` one at a time, taking every complete frame after each:
    /// the frames, and the error that stopped reading if one did.
    fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Seen>, Option<Malformed>) {
        let mut reader = CommandReader::new();
        let mut seen = Vec::new();
        for chunk in chunks {
            reader.buffer().extend_from_slice(chunk);
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => seen.push(Seen {
                        raw: frame.raw().to_vec(),
                        args: frame.args().map(<[u8]>::to_vec).collect(),
                        inline: frame.is_inline(),
                    }),
                    Ok(None) => break,
                    Err(why) => return (seen, Some(why)),
                }
            }
        }
        (seen, None)
    }

    fn refusal(bytes: &[u8]) -> String {
        match feed([bytes]) {
            (_, Some(Malformed(why))) => why,
            (seen, None) => panic!("{bytes:?} was taken: {seen:?}"),
        }
    }

    fn words(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn reads_a_pipeline_of_arrays_and_inline_commands_in_order() {
        let mut bytes = encode(&words(&["SET", "k", "v"]));
        bytes.extend_from_slice(b"PING\r\n");
        bytes.extend_from_slice(&encode(&words(&["GET", "k"])));
        bytes.extend_from_slice(b"  echo   hi \n");
        let (seen, error) = feed([&bytes[..]]);
        assert_eq!(error, None);
        let args: Vec<_> = seen.iter().map(|s| s.args.clone()).collect();
        assert_eq!(
            args,
            [
                words(&["SET", "k", "v"]),
                words(&["PING"]),
                words(&["GET", "k"]),
                words(&["echo", "hi"])
            ]
        );
        assert_eq!(
            seen.iter().map(|s| s.inline).collect::<Vec<_>>(),
            [false, true, false, true]
        );
        assert_eq!(seen.concat_raw(), bytes);
    }

    trait ConcatRaw {
        fn concat_raw(&self) -> Vec<u8>;
    }
    impl ConcatRaw for Vec<Seen> {
        fn concat_raw(&self) -> Vec<u8> {
            self.iter().flat_map(|s| s.raw.clone()).collect()
        }
    }

    #[test]
    fn a_frame_split_byte_by_byte_comes_out_once_when_complete() {
        let bytes = encode(&words(&["LPUSH", "queue:default", "{\"jid\":\"a\"}", ""]));
        let (seen, error) = feed(bytes.chunks(1));
        assert_eq!(error, None);
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].raw, bytes);
        assert_eq!(seen[0].args[3], b"");
    }

    #[test]
    fn keeps_only_the_partial_frame_after_handing_out_the_complete_ones() {
        let mut reader = CommandReader::new();
        let mut bytes = encode(&words(&["GET", "a"]));
        bytes.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r");
        reader.buffer().extend_from_slice(&bytes);
        assert!(reader.next_frame().unwrap().is_some());
        assert!(reader.next_frame().unwrap().is_none());
        assert_eq!(reader.buffer().as_slice(), b"*2\r\n$3\r\nGET\r\n$1\r");
        reader.buffer().extend_from_slice(b"\nb\r\n");
        let frame = reader.next_frame().unwrap().unwrap();
        assert_eq!(frame.arg(1), Some(&b"b"[..]));
        assert!(frame.is_named("get"));
        assert_eq!(reader.pending(), 0);
    }

    #[test]
    fn empty_arrays_and_empty_lines_are_frames_of_nothing() {
        let (seen, error) = feed([&b"*0\r\n*-1\r\n\r\n"[..]]);
        assert_eq!(error, None);
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|s| s.args.is_empty()));
    }

    #[test]
    fn refuses_what_redis_refuses_and_says_why() {
        assert_eq!(refusal(b"*x\r\n"), "invalid array length \"x\"");
        assert_eq!(refusal(b"*+1\r\n"), "invalid array length \"+1\"");
        assert_eq!(refusal(b"*01\r\n"), "invalid array length \"01\"");
        assert_eq!(refusal(b"*\r\n"), "invalid array length \"\"");
        assert_eq!(refusal(b"*1\r\n$-5\r\n"), "a negative bulk length (-5)");
        assert_eq!(refusal(b"*1\r\n$x\r\n"), "invalid bulk length \"x\"");
        assert_eq!(
            refusal(b"*1\r\n+PING\r\n"),
            "expected '$' for element 1 of the array, got \"+\""
        );
        assert_eq!(
            refusal(b"*1\r\n$4\r\nPINGxx"),
            "a bulk string of 4 bytes not followed by CRLF"
        );
        assert_eq!(
            refusal(b"*1\r\n$4\rx"),
            "bulk length line ended by CR without LF"
        );
        assert_eq!(
            refusal(format!("*{}\r\n", MAX_ARRAY + 1).as_bytes()),
            "an array of 1048577 elements, over Redis's limit of 1048576"
        );
        assert_eq!(
            refusal(format!("*1\r\n${}\r\n", MAX_BULK + 1).as_bytes()),
            "a bulk string of 536870913 bytes, over Redis's limit of 536870912 (512 MiB)"
        );
        assert_eq!(
            refusal(b"*99999999999999999999999999999999999"),
            "array length line over 32 bytes"
        );
        assert_eq!(
            refusal(&vec![b'a'; MAX_INLINE + 1]),
            "an inline command of over 65536 bytes without a newline"
        );
    }

    #[test]
    fn the_largest_lengths_redis_takes_are_waited_for_not_refused() {
        let mut reader = CommandReader::new();
        reader.buffer().extend_from_slice(
            format!("*{MAX_ARRAY}\r\n$3\r\nSET\r\n${MAX_BULK}\r\nab").as_bytes(),
        );
        assert!(matches!(reader.next_frame(), Ok(None)));
        let mut reader = CommandReader::new();
        reader.buffer().extend_from_slice(&vec![b'a'; MAX_INLINE]);
        assert!(matches!(reader.next_frame(), Ok(None)));
    }

    #[test]
    fn frames_before_a_malformed_one_are_still_handed_out() {
        let mut bytes = encode(&words(&["PING"]));
        bytes.extend_from_slice(b"*1\r\n$-5\r\n");
        let (seen, error) = feed([&bytes[..]]);
        assert_eq!(seen.len(), 1);
        assert!(error.is_some());
    }

    /// One command of a random pipeline: an array of any bytes, or an
    /// inline command of words.
    fn command() -> impl Strategy<Value = (Vec<u8>, Vec<Vec<u8>>)> {
        let array = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6)
            .prop_map(|args| (encode(&args), args));
        let inline = prop::collection::vec("[A-Za-z0-9:{}\"_-]{1,12}", 1..5).prop_map(|words| {
            let line = format!("{}\r\n", words.join(" "));
            (
                line.into_bytes(),
                words.into_iter().map(String::into_bytes).collect(),
            )
        });
        prop_oneof![4 => array, 1 => inline]
    }

    /// Splits `bytes` at the given points (any in range), in order.
    fn split(bytes: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
        points.iter_mut().for_each(|p| *p %= bytes.len() + 1);
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for point in points.into_iter().chain([bytes.len()]) {
            chunks.push(&bytes[from..point]);
            from = point;
        }
        chunks
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn a_valid_pipeline_split_anywhere_reads_back_as_its_commands(
            commands in prop::collection::vec(command(), 1..30),
            points in prop::collection::vec(any::<usize>(), 0..12),
        ) {
            let bytes: Vec<u8> = commands.iter().flat_map(|(raw, _)| raw.clone()).collect();
            let (seen, error) = feed(split(&bytes, points));
            prop_assert_eq!(error, None);
            let args: Vec<_> = seen.iter().map(|s| s.args.clone()).collect();
            let expected: Vec<_> = commands.iter().map(|(_, args)| args.clone()).collect();
            prop_assert_eq!(args, expected);
            prop_assert_eq!(seen.concat_raw(), bytes);
        }

        #[test]
        fn random_bytes_never_panic_and_frames_cover_a_prefix(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..300),
                // Bytes of the protocol's own alphabet find more of its paths.
                prop::collection::vec(prop::sample::select(b"*$\r\n-0123456789ab ".to_vec()), 0..300),
            ],
            points in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let (seen, error) = feed(split(&bytes, points));
            let covered = seen.concat_raw();
            prop_assert!(bytes.starts_with(&covered));
            if error.is_none() {
                // What is left is one frame still waiting for bytes: read
                // whole, it must still wait.
                let rest = &bytes[covered.len()..];
                let (more, again) = feed([rest]);
                prop_assert!(more.is_empty() && again.is_none(), "{:?} {:?}", more, again);
            }
        }
    }
}
