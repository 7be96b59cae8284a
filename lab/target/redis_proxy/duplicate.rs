//! The `duplicate` queue fault on the wire: a push of jobs onto a Sidekiq
//! queue (`LPUSH`/`RPUSH` to a key under the queue prefix) rewritten so that
//! each job is pushed twice, same payload and so same `jid`.
//!
//! Why twice in the one command and not the command sent twice: the app
//! must get the one reply it waits for (and inside `MULTI` the one
//! `+QUEUED`), so the rewrite stays invisible to it; and each copy right
//! after its original keeps the queue's order, as a broker's redelivery
//! would. Why only `LPUSH`/`RPUSH`: they are how Sidekiq (and the lab's
//! own runner) enqueue; a scheduled job reaches a queue the same way when
//! it is due. An inline command is never rewritten: no client library
//! sends one.

use super::frame::Frame;

/// A push of jobs onto a queue, read from a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePush<'a> {
    /// The command's name as the client spelled it (`LPUSH`, `rpush`).
    pub name: &'a [u8],
    /// The queue's key (`queue:default`).
    pub key: &'a [u8],
    /// The jobs' payloads, in the command's order.
    pub payloads: Vec<&'a [u8]>,
}

/// The push of jobs `frame` is, if it is one: an `LPUSH` or `RPUSH` of at
/// least one value to a key that starts with `prefix` and names a queue
/// after it.
pub fn queue_push<'a>(frame: &Frame<'a>, prefix: &str) -> Option<QueuePush<'a>> {
    if frame.is_inline() || !(frame.is_named("LPUSH") || frame.is_named("RPUSH")) {
        return None;
    }
    let name = frame.arg(0)?;
    let key = frame.arg(1)?;
    if frame.len() < 3 || key.len() <= prefix.len() || !key.starts_with(prefix.as_bytes()) {
        return None;
    }
    Some(QueuePush {
        name,
        key,
        payloads: frame.args().skip(2).collect(),
    })
}

/// Writes `push` to `out` with every payload twice, each copy right after
/// its original: `LPUSH q a b` becomes `LPUSH q a a b b`.
pub fn write_doubled(push: &QueuePush<'_>, out: &mut Vec<u8>) {
    let count = 2 + 2 * push.payloads.len();
    out.extend_from_slice(format!("*{count}\r\n").as_bytes());
    bulk(push.name, out);
    bulk(push.key, out);
    for payload in &push.payloads {
        bulk(payload, out);
        bulk(payload, out);
    }
}

/// One bulk string in RESP.
fn bulk(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// A job's `jid` and `class` read from its Sidekiq JSON payload, each
/// `None` when the payload is not a JSON object or lacks it as a string.
pub fn job_of(payload: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(serde_json::Value::Object(job)) = serde_json::from_slice(payload) else {
        return (None, None);
    };
    let field = |name: &str| job.get(name).and_then(|v| v.as_str()).map(str::to_string);
    (field("jid"), field("class"))
}

#[cfg(test)]
mod tests {
    use super::super::frame::CommandReader;
    use super::*;

    /// The first frame of `bytes`, handed to `check`.
    fn with_frame(bytes: &[u8], check: impl FnOnce(Frame<'_>)) {
        let mut reader = CommandReader::new();
        reader.buffer().extend_from_slice(bytes);
        let frame = reader.next_frame().unwrap().expect("a complete frame");
        check(frame);
    }

    fn resp(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            bulk(arg.as_bytes(), &mut out);
        }
        out
    }

    #[test]
    fn a_push_to_a_queue_is_doubled_in_one_command_each_copy_after_its_original() {
        with_frame(&resp(&["lpush", "queue:default", "a", "bb"]), |frame| {
            let push = queue_push(&frame, "queue:").expect("a queue push");
            assert_eq!(push.key, b"queue:default");
            let mut out = Vec::new();
            write_doubled(&push, &mut out);
            assert_eq!(out, resp(&["lpush", "queue:default", "a", "a", "bb", "bb"]));
        });
    }

    #[test]
    fn only_pushes_to_keys_under_the_prefix_are_queue_pushes() {
        let cases = [
            (vec!["RPUSH", "queue:mailers", "x"], "queue:", true),
            (vec!["LPUSH", "ns:queue:x", "x"], "ns:queue:", true),
            (vec!["LPUSH", "queue:x", "x"], "ns:queue:", false),
            (vec!["LPUSH", "ns:queue:x", "x"], "queue:", false),
            (vec!["LPUSH", "queue:", "x"], "queue:", false),
            (vec!["LPUSH", "orders:1", "x"], "queue:", false),
            (vec!["LPUSH", "queue:x"], "queue:", false),
            (vec!["SADD", "queues", "default"], "queue:", false),
            (vec!["LPUSHX", "queue:x", "x"], "queue:", false),
            (vec!["GET", "queue:x"], "queue:", false),
        ];
        for (args, prefix, expected) in cases {
            with_frame(&resp(&args), |frame| {
                assert_eq!(queue_push(&frame, prefix).is_some(), expected, "{args:?}");
            });
        }
        with_frame(b"LPUSH queue:x a\r\n", |frame| {
            assert_eq!(queue_push(&frame, "queue:"), None, "inline");
        });
    }

    #[test]
    fn a_job_is_named_by_its_jid_and_class_when_its_payload_says() {
        assert_eq!(
            job_of(br#"{"class":"ChargeJob","args":[1],"jid":"abc123"}"#),
            (Some("abc123".to_string()), Some("ChargeJob".to_string()))
        );
        assert_eq!(job_of(br#"{"jid":7}"#), (None, None));
        assert_eq!(job_of(b"not json"), (None, None));
        assert_eq!(job_of(b"[1,2]"), (None, None));
        assert_eq!(job_of(&[0xff, 0xfe]), (None, None));
    }
}
