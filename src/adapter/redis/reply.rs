//! Reading Redis replies: the generic `Value` taken apart (text, arrays, maps
//! across RESP2 and RESP3) and stream entries parsed from XRANGE and XREAD. Pure
//! functions, unit-tested here.

use redis::Value as RValue;

use super::wire::{Entry, StreamId};

/// What `XINFO STREAM` says of the stream (an absent stream is empty: all zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct StreamInfo {
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: Option<StreamId>,
    /// Entries ever added (Redis 7 and later).
    pub entries_added: Option<u64>,
}

/// Parse an `XINFO STREAM` reply (a flat list of fields and values, or a map).
pub(super) fn parse_stream_info(v: &RValue) -> StreamInfo {
    let mut info = StreamInfo::default();
    let fields = items(v);
    for pair in fields.chunks(2) {
        let (Some(k), Some(v)) = (pair.first().and_then(|k| text(k)), pair.get(1)) else {
            continue;
        };
        match k.as_str() {
            "length" => info.length = text(v).and_then(|n| n.parse().ok()).unwrap_or(0),
            "last-generated-id" => {
                info.last_id = text(v)
                    .and_then(|id| StreamId::parse(&id))
                    .unwrap_or_default();
            }
            "entries-added" => info.entries_added = text(v).and_then(|n| n.parse().ok()),
            "first-entry" => {
                info.first_id = items(v)
                    .first()
                    .and_then(|id| text(id))
                    .and_then(|id| StreamId::parse(&id));
            }
            _ => {}
        }
    }
    info
}

/// `XINFO STREAM <stream>`, an absent stream read as empty.
pub(super) async fn stream_info(
    conn: &mut redis::aio::MultiplexedConnection,
    stream: &str,
) -> Result<StreamInfo, redis::RedisError> {
    let reply: Result<RValue, redis::RedisError> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(stream)
        .query_async(conn)
        .await;
    match reply {
        Ok(v) => Ok(parse_stream_info(&v)),
        Err(e) if e.to_string().contains("no such key") => Ok(StreamInfo::default()),
        Err(e) => Err(e),
    }
}

pub(super) fn text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => String::from_utf8(b.clone()).ok(),
        RValue::SimpleString(s) => Some(s.clone()),
        RValue::VerbatimString { text, .. } => Some(text.clone()),
        RValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

pub(super) fn items(v: &RValue) -> Vec<&RValue> {
    match v {
        RValue::Array(a) | RValue::Set(a) => a.iter().collect(),
        RValue::Map(m) => m.iter().flat_map(|(k, v)| [k, v]).collect(),
        RValue::Attribute { data, .. } => items(data),
        _ => Vec::new(),
    }
}

/// `[[id, [field, value, ...]], ...]` (XRANGE, or one stream of XREAD).
pub(super) fn parse_entries(v: &RValue) -> Vec<Entry> {
    let mut out = Vec::new();
    for entry in items(v) {
        let parts = items(entry);
        let (Some(id), Some(fields)) = (parts.first().and_then(|i| text(i)), parts.get(1)) else {
            continue;
        };
        let mut e = Entry {
            id,
            ..Entry::default()
        };
        let fields = items(fields);
        for pair in fields.chunks(2) {
            let (Some(k), Some(v)) = (pair.first().and_then(|k| text(k)), pair.get(1)) else {
                continue;
            };
            let v = text(v);
            match k.as_str() {
                "uid" => e.uid = v.unwrap_or_default(),
                "nsp" => e.nsp = v.unwrap_or_default(),
                "type" => e.kind = v.unwrap_or_default(),
                "data" => e.data = v,
                "sc" => e.sc = v,
                "ps" => e.ps = v.and_then(|n| n.parse().ok()),
                _ => {}
            }
        }
        out.push(e);
    }
    out
}

/// XREAD: `[[stream, entries]]` (RESP2) or `{stream: entries}` (RESP3); nil on timeout.
pub(super) fn parse_xread(v: &RValue) -> Vec<Entry> {
    match v {
        RValue::Nil => Vec::new(),
        RValue::Map(streams) => streams
            .iter()
            .flat_map(|(_, entries)| parse_entries(entries))
            .collect(),
        other => items(other)
            .into_iter()
            .flat_map(|stream| {
                let parts = items(stream);
                parts.get(1).map(|e| parse_entries(e)).unwrap_or_default()
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> RValue {
        RValue::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_replies_parse() {
        let entry = RValue::Array(vec![
            bulk("1-2"),
            RValue::Array(vec![
                bulk("uid"),
                bulk("u"),
                bulk("nsp"),
                bulk("/"),
                bulk("type"),
                bulk("3"),
                bulk("data"),
                bulk("{}"),
                bulk("sc"),
                bulk("7"),
            ]),
        ]);
        let resp2 = RValue::Array(vec![RValue::Array(vec![
            bulk("socket.io"),
            RValue::Array(vec![entry.clone()]),
        ])]);
        let parsed = parse_xread(&resp2);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].id, "1-2");
        assert_eq!(parsed[0].sc.as_deref(), Some("7"));
        let resp3 = RValue::Map(vec![(bulk("socket.io"), RValue::Array(vec![entry]))]);
        assert_eq!(parse_xread(&resp3), parsed);
        assert!(parse_xread(&RValue::Nil).is_empty());
        assert!(parse_xread(&RValue::Int(3)).is_empty());
    }

    #[test]
    fn stream_info_parses() {
        let reply = RValue::Array(vec![
            bulk("length"),
            RValue::Int(3),
            bulk("last-generated-id"),
            bulk("5-1"),
            bulk("entries-added"),
            RValue::Int(9),
            bulk("first-entry"),
            RValue::Array(vec![bulk("4-0"), RValue::Array(vec![])]),
            bulk("last-entry"),
            RValue::Nil,
        ]);
        let info = parse_stream_info(&reply);
        assert_eq!(info.length, 3);
        assert_eq!(info.last_id, StreamId { ms: 5, seq: 1 });
        assert_eq!(info.first_id, Some(StreamId { ms: 4, seq: 0 }));
        assert_eq!(info.entries_added, Some(9));
        assert_eq!(parse_stream_info(&RValue::Nil), StreamInfo::default());
    }
}
