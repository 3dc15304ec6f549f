#!/usr/bin/env node
// Reference Socket.IO server (Node socket.io 4.8) for tether's integration tests.
//
// The behaviour and the /control/ HTTP API are the same as tests/servers/pyserver.py's; both are
// described in servers/README.md. Usage:
//
//   node servers/node/server.js --port 0 [--host 127.0.0.1] [--ping-interval MS]
//       [--ping-timeout MS] [--csr] [--token TOKEN] [--max-payload BYTES] [--no-ping]
//       [--late-hello] [--transports polling,websocket] [--parser default|msgpack]
//       [--path /socket.io/] [--watch-stdin]
//
// Once it accepts connections it prints exactly one line to stdout:
//   listening on http://HOST:PORT
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

function parseArgs(argv) {
  const opts = {
    host: "127.0.0.1",
    port: 0,
    pingInterval: 25000,
    pingTimeout: 20000,
    maxPayload: 1000000,
    csr: false,
    token: null,
    noPing: false,
    lateHello: false,
    watchStdin: false,
    transports: ["polling", "websocket"],
    parser: "default",
    path: "/socket.io/",
  };
  const valued = {
    "--host": (v) => (opts.host = v),
    "--port": (v) => (opts.port = toInt("--port", v)),
    "--ping-interval": (v) => (opts.pingInterval = toInt("--ping-interval", v)),
    "--ping-timeout": (v) => (opts.pingTimeout = toInt("--ping-timeout", v)),
    "--max-payload": (v) => (opts.maxPayload = toInt("--max-payload", v)),
    "--token": (v) => (opts.token = v),
    "--transports": (v) => (opts.transports = toTransports(v)),
    "--parser": (v) => (opts.parser = toParser(v)),
    "--path": (v) => (opts.path = v),
  };
  const flags = {
    "--csr": () => (opts.csr = true),
    "--no-ping": () => (opts.noPing = true),
    "--late-hello": () => (opts.lateHello = true),
    "--watch-stdin": () => (opts.watchStdin = true),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg in valued) {
      if (i + 1 >= argv.length) usage(`${arg} needs a value`);
      valued[arg](argv[++i]);
    } else if (arg in flags) {
      flags[arg]();
    } else {
      usage(`unknown argument ${arg}`);
    }
  }
  return opts;
}

function toInt(name, value) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) usage(`${name} must be a non-negative integer`);
  return n;
}

// "polling", "websocket" or both, comma-separated: what the engine accepts (a polling-only server
// offers no upgrade; a WebSocket-only one answers polling requests with 400).
function toTransports(value) {
  const names = value.split(",").filter((n) => n);
  if (!names.length || names.some((n) => n !== "polling" && n !== "websocket")) {
    usage("--transports takes polling, websocket or both (comma-separated)");
  }
  return names;
}

// "default" (socket.io-parser) or "msgpack" (socket.io-msgpack-parser): a server whose Socket.IO
// packets are MessagePack, which a client speaking the default parser cannot talk to.
function toParser(value) {
  if (value !== "default" && value !== "msgpack") usage("--parser takes default or msgpack");
  return value;
}

function usage(message) {
  process.stderr.write(`server.js: ${message}\n`);
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------------------------------------
// Recorded state, served by GET /control/state.

const state = {
  history: [], // {sid, auth, recovered, time} per accepted connection
  refused: [], // {auth, time} per handshake refused by the token middleware
  disconnects: [], // {sid, reason}
  records: [], // the first argument of every "record" event, in arrival order
  ticks: 0, // how many "tick" events the ticker has emitted (POST /control/ticks)
  received: [], // {sid, event, args} per event from a client, in the order they arrived
  pongs: {}, // sid -> how many Engine.IO pongs its connection has sent us
  connections: 0,
};
let ticker = null;
// The most events `received` keeps (the oldest go first): the state stays small.
const MAX_RECEIVED = 10000;
let muted = opts.noPing;

const now = () => Date.now() / 1000;

// JSON cannot carry bytes: the control API writes them as {"$b64": "..."}.
function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$b64") return Buffer.from(value.$b64, "base64");
    const out = {};
    for (const k of keys) out[k] = fromJson(value[k]);
    return out;
  }
  return value;
}

function toJson(value) {
  if (Buffer.isBuffer(value)) return { $b64: value.toString("base64") };
  if (value instanceof ArrayBuffer) return { $b64: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value)) out[k] = toJson(value[k]);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// The Socket.IO server.

const httpServer = http.createServer(handleControl);
const io = new Server(httpServer, {
  path: opts.path, // engine.io's default addTrailingSlash: "/x" serves "/x/..." only
  transports: opts.transports,
  pingInterval: opts.pingInterval,
  pingTimeout: opts.pingTimeout,
  maxHttpBufferSize: opts.maxPayload,
  ...(opts.parser === "msgpack" ? { parser: require("socket.io-msgpack-parser") } : {}),
  connectionStateRecovery: opts.csr
    ? { maxDisconnectionDuration: 120000, skipMiddlewares: true }
    : undefined,
});

// Muting: the engine's ping timer keeps ticking, but the ping is not written and the server does
// not arm its own pong deadline, so the connection stays up on this side while the client sees
// no ping at all. engine.io 6.6: schedulePing() fires -> sendPacket("ping") + resetPingTimeout().
io.engine.on("connection", (conn) => {
  const sendPacket = conn.sendPacket.bind(conn);
  const resetPingTimeout = conn.resetPingTimeout.bind(conn);
  conn.sendPacket = (type, ...rest) => {
    if (type === "ping" && muted) return;
    sendPacket(type, ...rest);
  };
  conn.resetPingTimeout = () => {
    if (!muted) {
      resetPingTimeout();
      return;
    }
    clearTimeout(conn.pingTimeoutTimer);
    conn.pingTimeoutTimer = null;
    if (conn.pingIntervalTimer) conn.pingIntervalTimer.refresh(); // next (silent) tick
  };
});

if (opts.token !== null) {
  io.use((socket, next) => {
    const auth = socket.handshake.auth;
    if (!auth || auth.token !== opts.token) {
      state.refused.push({ auth: toJson(auth), time: now() });
      const err = new Error("unauthorized");
      err.data = { reason: "bad token", retry: false };
      next(err);
      return;
    }
    next();
  });
}

if (!opts.lateHello) {
  // Written straight to the client (socket.packet, not socket.emit, so it also works with
  // connection state recovery, whose emits go through the adapter): it leaves before the CONNECT
  // reply, like python-socketio's emit from its connect handler. A recovered socket skips the
  // middlewares (skipMiddlewares) and gets its missed packets instead.
  io.use((socket, next) => {
    socket.packet({ type: 2, data: ["hello", { sid: socket.id }] });
    next();
  });
}

io.on("connection", (socket) => {
  state.connections += 1;
  state.history.push({
    sid: socket.id,
    auth: toJson(socket.handshake.auth),
    recovered: socket.recovered,
    time: now(),
    ticks: state.ticks,
  });
  if (opts.lateHello) socket.emit("hello", { sid: socket.id });

  // Before the handlers, in arrival order: what the client sent, without the ack callback.
  socket.onAny((event, ...args) => {
    if (args.length && typeof args[args.length - 1] === "function") args.pop();
    state.received.push({ sid: socket.id, event, args: toJson(args) });
    if (state.received.length > MAX_RECEIVED) state.received.shift();
  });

  // The client's pongs, counted as they are read: a client that keeps answering pings.
  state.pongs[socket.id] = 0;
  socket.conn.on("packet", (packet) => {
    if (packet.type === "pong" && socket.id in state.pongs) state.pongs[socket.id] += 1;
  });

  socket.on("disconnect", (reason) => {
    state.disconnects.push({ sid: socket.id, reason, ticks: state.ticks });
  });

  const splitAck = (args) =>
    args.length && typeof args[args.length - 1] === "function" ? args.pop() : null;

  socket.on("echo", (...args) => {
    splitAck(args);
    socket.emit("echo", ...args);
  });
  socket.on("ack", (...args) => {
    const ack = splitAck(args);
    if (ack) ack(...args);
  });
  socket.on("slow-ack", (...args) => {
    const ack = splitAck(args);
    const seconds = Number(args[0]) || 0;
    if (ack) setTimeout(() => ack("done"), seconds * 1000);
  });
  socket.on("no-ack", () => {});
  socket.on("record", (...args) => {
    const ack = splitAck(args);
    state.records.push(toJson(args[0]));
    if (ack) ack("ok");
  });
  socket.on("emit-many", (...args) => {
    splitAck(args);
    const [count, size] = args;
    const filler = "x".repeat(size || 0);
    for (let i = 0; i < count; i++) socket.emit("item", i, filler);
  });
  socket.on("broadcast", (...args) => {
    splitAck(args);
    io.emit("broadcast", ...args);
  });
});

// ---------------------------------------------------------------------------------------------
// Control API: /control/...

function reply(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function findSocket(sid) {
  return io.of("/").sockets.get(sid);
}

async function handleControl(req, res) {
  const url = new URL(req.url, "http://localhost");
  if (!url.pathname.startsWith("/control/")) return reply(res, 404, { error: "not found" });
  const action = url.pathname.slice("/control/".length);
  const sid = url.searchParams.get("sid");
  try {
    if (action === "state" && req.method === "GET") {
      return reply(res, 200, {
        connected: [...io.of("/").sockets.keys()],
        history: state.history,
        connections: state.connections,
        disconnects: state.disconnects,
        refused: state.refused,
        records: state.records,
        ticks: state.ticks,
        received: state.received,
        pongs: state.pongs,
        muted,
      });
    }
    if (req.method !== "POST") return reply(res, 405, { error: "use POST" });
    const body = await readBody(req);
    switch (action) {
      case "disconnect":
      case "drop": {
        const socket = findSocket(sid);
        if (!socket) return reply(res, 404, { error: `no connected socket ${sid}` });
        if (action === "disconnect") socket.disconnect();
        else socket.conn.close(); // closes the WebSocket, no Socket.IO DISCONNECT
        return reply(res, 200, { ok: true });
      }
      case "emit": {
        const msg = body ? JSON.parse(body) : {};
        if (typeof msg.event !== "string") return reply(res, 400, { error: "event missing" });
        const args = fromJson(msg.args || []);
        if (sid) {
          const socket = findSocket(sid);
          if (!socket) return reply(res, 404, { error: `no connected socket ${sid}` });
          socket.emit(msg.event, ...args);
        } else {
          io.emit(msg.event, ...args);
        }
        return reply(res, 200, { ok: true });
      }
      case "ticks": {
        // Emit "tick" n (1, 2, 3 ...) to everyone every `interval` ms (0 stops): a steady
        // stream of broadcasts, replayed by connection state recovery.
        const interval = Number(url.searchParams.get("interval")) || 0;
        if (ticker) clearInterval(ticker);
        ticker = null;
        if (interval > 0) {
          ticker = setInterval(() => {
            state.ticks += 1;
            io.emit("tick", state.ticks);
          }, interval);
        }
        return reply(res, 200, { ok: true, ticks: state.ticks });
      }
      case "mute":
        muted = true;
        return reply(res, 200, { ok: true });
      case "unmute":
        muted = false;
        return reply(res, 200, { ok: true });
      case "reset":
        state.history.length = 0;
        state.received.length = 0;
        state.refused.length = 0;
        state.disconnects.length = 0;
        state.records.length = 0;
        state.ticks = 0;
        state.pongs = {};
        state.connections = 0;
        return reply(res, 200, { ok: true });
      default:
        return reply(res, 404, { error: `unknown control ${action}` });
    }
  } catch (err) {
    return reply(res, 500, { error: String(err && err.stack ? err.stack : err) });
  }
}

// ---------------------------------------------------------------------------------------------

if (opts.watchStdin) {
  // The test harness holds our stdin open; when it dies, stdin ends and so do we (no orphans).
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("error", () => process.exit(0));
  process.stdin.resume();
}
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}

httpServer.on("error", (err) => {
  process.stderr.write(`server.js: ${err.message}\n`);
  process.exit(err.code === "EADDRINUSE" ? 3 : 1);
});
httpServer.listen(opts.port, opts.host, () => {
  const { port } = httpServer.address();
  process.stdout.write(`listening on http://${opts.host}:${port}\n`);
});
