#!/usr/bin/env node
// Benchmark server for tether: Node socket.io 4.8 (pinned in package.json / package-lock.json).
//
//   node benchmarks/server/server.js [--host 127.0.0.1] [--port 0] [--max-lifetime S]
//       [--deferred]
//
// Prints exactly one line to stdout once it accepts connections:
//   listening on http://HOST:PORT
// With --deferred it loads everything, prints "loaded" and only listens when the line
// "listen" arrives on stdin: the reconnect storm uses it to restart the server on the same
// port within milliseconds of killing the old one, whatever Node's start-up time.
// and stops by itself when its stdin closes (the runner holds the pipe) or after --max-lifetime
// seconds, whichever comes first. Only loopback hosts are accepted.
//
// Socket events (from any client, namespace "/"):
//   "blast" {kind, count}  send `count` events named "e" to this socket, as fast as possible.
//                          kind: "json64" (one JSON object argument of 64 bytes), "json1k"
//                          (1024 bytes), "bin1k" (one 1024-byte binary argument).
//                          The first event goes through the real socket.emit(); its bytes are
//                          captured on the TCP socket and compared with the pre-encoded frames.
//                          Only if they are byte-identical are the other count-1 events written
//                          as pre-encoded WebSocket frames, in batches, straight to the TCP
//                          socket under ws (honouring backpressure). On a mismatch nothing more
//                          is sent and the mismatch is recorded (GET /control/stats).
//   "echo" (...args, ack)  acknowledge with the same arguments.
//
// HTTP control API:
//   GET /control/stats     {blasts, verified, mismatches, sent, connections, attempts, ...}
//   GET /control/attempts  {attempts: [epoch ms...], connections: [epoch ms...], started: ms}
//                          attempts = WebSocket upgrade requests + Engine.IO polling handshakes
//                          seen by the HTTP server; connections = Socket.IO namespace connects.
//
// Why blast mode: a naive `for (...) socket.emit()` loop tops out near 100k events/s in Node,
// which is below what a fast client can take; writing the same bytes in batches does not.
"use strict";

const http = require("node:http");
const { performance } = require("node:perf_hooks");
const { Server } = require("socket.io");
const { Encoder, PacketType } = require("socket.io-parser");
const eioParser = require("engine.io-parser");
const Sender = require("ws").Sender;

// ---------------------------------------------------------------------------------- options

const opts = { host: "127.0.0.1", port: 0, maxLifetime: 900, deferred: false };
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i];
  if (arg === "--deferred") {
    opts.deferred = true;
    continue;
  }
  const value = process.argv[++i];
  if (value === undefined) fail(`${arg} needs a value`);
  if (arg === "--host") opts.host = value;
  else if (arg === "--port") opts.port = Number(value);
  else if (arg === "--max-lifetime") opts.maxLifetime = Number(value);
  else fail(`unknown argument ${arg}`);
}
if (!["127.0.0.1", "::1", "localhost"].includes(opts.host)) fail("only loopback hosts");
if (!Number.isInteger(opts.port) || opts.port < 0) fail("--port must be an integer >= 0");

function fail(message) {
  process.stderr.write(`server.js: ${message}\n`);
  process.exit(2);
}

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms resolution

// ---------------------------------------------------------------------------------- payloads

const SIZES = { json64: 64, json1k: 1024 };

function jsonPayload(size) {
  // {"seq":0,"pad":"xxxx"} padded so that JSON.stringify gives exactly `size` bytes.
  const base = JSON.stringify({ seq: 0, pad: "" }).length;
  const payload = { seq: 0, pad: "x".repeat(size - base) };
  if (JSON.stringify(payload).length !== size) throw new Error("payload size");
  return payload;
}

function payloadFor(kind) {
  if (kind in SIZES) return jsonPayload(SIZES[kind]);
  if (kind === "bin1k") {
    const buf = Buffer.alloc(1024);
    for (let i = 0; i < buf.length; i++) buf[i] = i & 0xff;
    return buf;
  }
  return undefined;
}

// One WebSocket frame as a server sends it: FIN, unmasked (RFC 6455 5.2).
function wsFrame(data, binary) {
  const body = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let header;
  if (body.length < 126) {
    header = Buffer.from([binary ? 0x82 : 0x81, body.length]);
  } else if (body.length < 65536) {
    header = Buffer.alloc(4);
    header[0] = binary ? 0x82 : 0x81;
    header[1] = 126;
    header.writeUInt16BE(body.length, 2);
  } else {
    throw new Error("frame too large for the benchmark");
  }
  return Buffer.concat([header, body]);
}

// The bytes of one `socket.emit("e", payload)` on namespace "/", built by hand: Engine.IO
// message packet "4" + Socket.IO EVENT "2" + JSON, or for binary a BINARY_EVENT header packet
// plus a raw binary frame (Engine.IO v4 sends binary over WebSocket without a prefix).
function handEncoded(kind, payload) {
  if (kind === "bin1k") {
    const header = '451-["e",{"_placeholder":true,"num":0}]';
    return Buffer.concat([wsFrame(header, false), wsFrame(payload, true)]);
  }
  return wsFrame("42" + JSON.stringify(["e", payload]), false);
}

// The same bytes produced by the libraries' own encoders (socket.io-parser, engine.io-parser,
// ws's Sender.frame), as socket.emit() would. Checked once per kind at start-up.
function libraryEncoded(payload) {
  const parts = new Encoder().encode({ type: PacketType.EVENT, nsp: "/", data: ["e", payload] });
  const frames = [];
  for (const part of parts) {
    let encoded;
    eioParser.encodePacket({ type: "message", data: part }, true, (d) => (encoded = d));
    const binary = typeof encoded !== "string";
    const list = Sender.frame(binary ? encoded : Buffer.from(encoded), {
      fin: true,
      rsv1: false,
      opcode: binary ? 2 : 1,
      mask: false,
      readOnly: false,
    });
    frames.push(...list);
  }
  return Buffer.concat(frames);
}

const KINDS = {};
for (const kind of ["json64", "json1k", "bin1k"]) {
  const payload = payloadFor(kind);
  const frame = handEncoded(kind, payload);
  const lib = libraryEncoded(payload);
  if (!frame.equals(lib)) fail(`pre-encoded ${kind} frame differs from the encoders' output`);
  KINDS[kind] = { payload, frame };
}

// A batch is as many frames as fit in ~256 KiB (at least 1): one write per batch.
const BATCH_BYTES = 256 * 1024;
const batches = new Map(); // kind -> {buffer, frames}
function batchFor(kind) {
  let batch = batches.get(kind);
  if (!batch) {
    const { frame } = KINDS[kind];
    const frames = Math.max(1, Math.floor(BATCH_BYTES / frame.length));
    batch = { buffer: Buffer.concat(Array(frames).fill(frame)), frames, frameLength: frame.length };
    batches.set(kind, batch);
  }
  return batch;
}

// ---------------------------------------------------------------------------------- state

const stats = {
  started: now(),
  blasts: 0,
  verified: 0,
  mismatches: [],
  errors: [],
  sent: 0,
  connections: 0,
  attempts: 0,
  echoes: 0,
};
const attemptTimes = [];
const connectionTimes = [];

// ---------------------------------------------------------------------------------- server

const httpServer = http.createServer((req, res) => {
  if (!req.url.startsWith("/control/")) return; // engine.io answers its own requests
  const reply = (code, body) => {
    res.writeHead(code, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  };
  if (req.url === "/control/stats") return reply(200, { ...stats, pid: process.pid });
  if (req.url === "/control/attempts") {
    return reply(200, { started: stats.started, attempts: attemptTimes, connections: connectionTimes });
  }
  return reply(404, { error: "unknown control path" });
});

// Count connection attempts before engine.io sees them (listeners run in order of addition,
// and this one is added before engine.io attaches its own).
httpServer.on("upgrade", () => {
  stats.attempts++;
  attemptTimes.push(now());
});

const io = new Server(httpServer, {
  serveClient: false,
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 2e6,
});

// Added after engine.io attached: it only forwards requests that are not its own to the
// listeners it found, so this one must come after it to see polling handshakes.
httpServer.on("request", (req) => {
  // An Engine.IO polling handshake (no sid) is an attempt too; the benchmark clients all use
  // the WebSocket transport directly, so this should stay at zero.
  if (req.url.startsWith("/socket.io/") && !req.url.includes("sid=")) {
    stats.attempts++;
    attemptTimes.push(now());
  }
});

io.on("connection", (socket) => {
  stats.connections++;
  connectionTimes.push(now());
  socket.on("echo", (...args) => {
    const ack = args.pop();
    stats.echoes++;
    if (typeof ack === "function") ack(...args);
  });
  socket.on("blast", (request) => {
    blast(socket, request).catch((err) => {
      stats.errors.push(String((err && err.stack) || err));
      process.stderr.write(`server.js: blast failed: ${err && err.stack}\n`);
    });
  });
});

// Capture what socket.emit("e", payload) writes to the TCP socket.
function captureEmit(socket, raw, payload, expectedLength) {
  return new Promise((resolve) => {
    const chunks = [];
    let length = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      delete raw.write; // back to net.Socket.prototype.write
      resolve(Buffer.concat(chunks));
    };
    raw.write = function (chunk, ...rest) {
      if (!done) {
        const buf = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk);
        chunks.push(buf);
        length += buf.length;
        if (length >= expectedLength) setImmediate(finish);
      }
      return Object.getPrototypeOf(raw).write.call(raw, chunk, ...rest);
    };
    const timer = setTimeout(finish, 2000); // bounded: emit may wait for the transport
    socket.emit("e", payload);
  });
}

async function blast(socket, request) {
  const kind = request && request.kind;
  const count = request && request.count;
  if (!(kind in KINDS) || !Number.isInteger(count) || count < 1 || count > 10_000_000) {
    stats.errors.push(`bad blast request ${JSON.stringify(request)}`);
    return;
  }
  const ws = socket.conn.transport && socket.conn.transport.socket;
  const raw = ws && ws._socket;
  if (socket.conn.transport.name !== "websocket" || !raw) {
    stats.errors.push("blast needs a WebSocket transport");
    return;
  }
  stats.blasts++;
  const { payload, frame } = KINDS[kind];

  // 1. One real emit, captured on the wire, must equal the pre-encoded frame(s).
  const captured = await captureEmit(socket, raw, payload, frame.length);
  if (!captured.equals(frame)) {
    stats.mismatches.push({
      kind,
      expected: frame.toString("hex").slice(0, 400),
      captured: captured.toString("hex").slice(0, 400),
    });
    process.stderr.write(`server.js: ${kind}: emit bytes differ from the pre-encoded frame\n`);
    return;
  }
  stats.verified++;
  stats.sent++;

  // 2. The other count-1 events, pre-encoded, in batches, with backpressure.
  const batch = batchFor(kind);
  let left = count - 1;
  while (left > 0) {
    if (raw.destroyed || !raw.writable) return;
    const n = Math.min(left, batch.frames);
    const chunk = n === batch.frames ? batch.buffer : batch.buffer.subarray(0, n * batch.frameLength);
    left -= n;
    stats.sent += n;
    if (!raw.write(chunk)) {
      await new Promise((resolve) => {
        const done = () => {
          raw.off("drain", done);
          raw.off("close", done);
          resolve();
        };
        raw.on("drain", done);
        raw.on("close", done);
      });
    }
  }
}

// ---------------------------------------------------------------------------------- lifetime

httpServer.on("error", (err) => fail(`cannot listen: ${err.message}`));
function listen() {
  httpServer.listen(opts.port, opts.host, () => {
    const { address, port } = httpServer.address();
    const host = address.includes(":") ? `[${address}]` : address;
    process.stdout.write(`listening on http://${host}:${port}\n`);
  });
}
if (opts.deferred) {
  let pending = "";
  const onData = (chunk) => {
    pending += chunk.toString();
    if (pending.split("\n").includes("listen")) {
      process.stdin.off("data", onData);
      listen();
    }
  };
  process.stdin.on("data", onData);
  process.stdout.write("loaded\n");
} else {
  listen();
}

// Stop by ourselves: when the parent goes away (stdin closes), on SIGTERM, or after a while.
process.stdin.on("end", () => process.exit(0));
process.stdin.on("error", () => process.exit(0));
process.stdin.resume();
process.on("SIGTERM", () => process.exit(0));
setTimeout(() => process.exit(0), opts.maxLifetime * 1000).unref();
