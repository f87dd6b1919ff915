// Keeps a swarmcast keyed state map in sync on the client, with any socket.io-client
// (browser or Node). No dependencies.
//
//   import { LiveState } from "./live-state.mjs";
//   const agents = new LiveState(socket, "agents", { onChange: (map) => render(map) });
//   agents.get("a1"); agents.entries;   // a plain object, always the server's map
//
// Wire format (docs/protocol.md): after `subscribe` {"state": name}, the server sends
// `swarmcast:snapshot` {map, version, entries} and then `swarmcast:delta`
// {map, version, key, value} or {map, version, key, deleted: true}. With connection
// state recovery an extra offset argument follows; it is ignored here.

export class LiveState {
  /**
   * @param {import("socket.io-client").Socket} socket
   * @param {string} map  the state map name
   * @param {{keys?: string[], onChange?: (entries: object, change: object) => void}} [options]
   */
  constructor(socket, map, options = {}) {
    this.socket = socket;
    this.map = map;
    this.keys = options.keys;
    this.onChange = options.onChange;
    this.entries = {};
    this.version = 0;
    this.ready = false;
    this._onSnapshot = (msg) => {
      if (!msg || msg.map !== this.map) return;
      this.entries = { ...msg.entries };
      this.version = msg.version;
      this.ready = true;
      this.onChange?.(this.entries, { snapshot: true });
    };
    this._onDelta = (msg) => {
      if (!msg || msg.map !== this.map || !this.ready) return;
      if (msg.deleted) delete this.entries[msg.key];
      else this.entries[msg.key] = msg.value;
      this.version = Math.max(this.version, msg.version);
      this.onChange?.(this.entries, msg);
    };
    // A recovered session keeps its subscription and replays what it missed; any other
    // (re)connection subscribes again and starts from a fresh snapshot.
    this._onConnect = () => {
      if (!socket.recovered) this.subscribe();
    };
    socket.on("swarmcast:snapshot", this._onSnapshot);
    socket.on("swarmcast:delta", this._onDelta);
    socket.on("connect", this._onConnect);
    if (socket.connected) this.subscribe();
  }

  /** Ask for the snapshot and the deltas; resolves with the server's answer. */
  subscribe() {
    this.ready = false;
    const request = { state: this.map };
    if (this.keys) request.keys = this.keys;
    return new Promise((resolve) => this.socket.emit("subscribe", request, resolve));
  }

  get(key) {
    return this.entries[key];
  }

  /** Stop following the map. */
  close() {
    this.socket.off("swarmcast:snapshot", this._onSnapshot);
    this.socket.off("swarmcast:delta", this._onDelta);
    this.socket.off("connect", this._onConnect);
    this.socket.emit("unsubscribe", { state: this.map });
  }
}
