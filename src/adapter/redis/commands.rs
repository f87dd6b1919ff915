//! The Redis commands that write the cluster's log: the Lua scripts of keyed
//! state, and the builders of their EVAL and of a stream entry's XADD. Shared by the
//! node's publisher and by [`RedisEmitter`](super::RedisEmitter), which must write
//! exactly what a node writes.

use serde_json::Value;

use super::config::RedisConfig;
use super::wire;
use super::StateChange;
use crate::socketio::rooms::Target;

/// A keyed-state change: the hash, the map's version and the delta's log entry move
/// together, so that versions follow log order on every node.
const STATE_SCRIPT: &str = r"
if ARGV[1] == 'del' then
  if redis.call('HDEL', KEYS[1], ARGV[3]) == 0 then return false end
else
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
end
local v = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
  'uid', ARGV[6], 'nsp', ARGV[7], 'type', '3', 'data', ARGV[8] .. v .. ARGV[9], 'sc', 's')
return {v, id}
";

/// A map's version and entries, read together.
pub(super) const LOAD_SCRIPT: &str = r"
local v = redis.call('HGET', KEYS[2], ARGV[1])
return {v or '0', redis.call('HGETALL', KEYS[1])}
";

/// The EVAL of a state change, with the delta's JSON split around its version.
pub(super) fn state_command(
    config: &RedisConfig,
    uid: &str,
    nsp: &str,
    change: &StateChange,
) -> redis::Cmd {
    let map_json = Value::from(change.map.as_str()).to_string();
    let key_json = Value::from(change.key.as_str()).to_string();
    let prefix = format!(
        r#"{{"packet":{{"type":2,"data":["{}",{{"map":{map_json},"version":"#,
        crate::socketio::state::DELTA_EVENT
    );
    let rest = match &change.value {
        Some(v) => format!(r#","key":{key_json},"value":{v}}}"#),
        None => format!(r#","key":{key_json},"deleted":true}}"#),
    };
    let room = crate::socketio::state::state_room(&change.map);
    let target = Target::room(room);
    let suffix = format!(
        r#"{rest}],"nsp":{}}},"opts":{}}}"#,
        Value::from(nsp),
        wire::opts_json(&target, false)
    );
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(STATE_SCRIPT)
        .arg(3)
        .arg(config.state_entries_key(nsp, &change.map))
        .arg(config.state_maps_key(nsp))
        .arg(&config.stream_name)
        .arg(if change.value.is_some() { "set" } else { "del" })
        .arg(&change.map)
        .arg(&change.key)
        .arg(
            change
                .value
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
        )
        .arg(config.max_len)
        .arg(uid)
        .arg(nsp)
        .arg(prefix)
        .arg(suffix);
    cmd
}

/// XADD of one cluster message in the adapter's format.
pub(super) fn xadd_command(
    config: &RedisConfig,
    uid: &str,
    nsp: &str,
    kind: u64,
    data: Option<&str>,
    sc: Option<&str>,
    ps: Option<u64>,
) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&config.stream_name)
        .arg("MAXLEN")
        .arg("~")
        .arg(config.max_len)
        .arg("*")
        .arg("uid")
        .arg(uid)
        .arg("nsp")
        .arg(nsp)
        .arg("type")
        .arg(kind.to_string());
    if let Some(data) = data {
        cmd.arg("data").arg(data);
    }
    if let Some(sc) = sc {
        cmd.arg("sc").arg(sc);
    }
    if let Some(ps) = ps {
        cmd.arg("ps").arg(ps);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_commands_carry_the_delta_around_the_version() {
        let config = RedisConfig::new("redis://127.0.0.1");
        let change = StateChange {
            map: "agents".into(),
            key: "a1".into(),
            value: Some(serde_json::json!({"s": 1})),
        };
        let cmd = state_command(&config, "u", "/", &change);
        let args: Vec<String> = cmd
            .args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect();
        let prefix = &args[args.len() - 2];
        let suffix = &args[args.len() - 1];
        let data = format!("{prefix}7{suffix}");
        let (msg, _, delta) = wire::decode_broadcast(&data).expect("a broadcast");
        let delta = delta.expect("a delta");
        assert_eq!(delta.version, 7);
        assert_eq!(delta.value, Some(serde_json::json!({"s": 1})));
        assert_eq!(msg.target, Target::room("state:agents"));
        assert_eq!(args[3], "swarmcast:state:/:map:agents");
    }
}
