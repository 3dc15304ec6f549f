#!/usr/bin/env node
// Node's reference client (socket.io-client 4.8) against tether's hub, driven by a test:
// tests/hub/test_node_client.py checks that a plain Socket.IO client keeps working with the
// hub (specs/hub-wire-format.md, specs/delivery.md §4). Usage:
//
//   node servers/node/hub_client.js URL [OPTIONS_JSON]
//
// OPTIONS_JSON goes to io() as it is (e.g. {"auth": {...}, "transports": ["websocket"]});
// reconnection is off unless it says otherwise. Commands come on stdin, one JSON object a line:
//
//   {"emit": EVENT, "args": [...]}               emit, no ack
//   {"emit": EVENT, "args": [...], "ack": REF}   emit with an ack; its answer is printed
//   {"close": true}                              disconnect and exit (so does the end of stdin)
//
// Everything received is printed to stdout, one JSON object a line:
//
//   {"connect": SID} | {"connect_error": MESSAGE, "data": DATA} | {"disconnect": REASON}
//   {"event": NAME, "args": [...]} | {"ack": REF, "args": [...]}
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

const [url, optionsJson] = process.argv.slice(2);
if (!url) {
  process.stderr.write("usage: node hub_client.js URL [OPTIONS_JSON]\n");
  process.exit(2);
}
const socket = io(url, { reconnection: false, ...JSON.parse(optionsJson || "{}") });

function print(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

socket.on("connect", () => print({ connect: socket.id }));
socket.on("connect_error", (err) => print({ connect_error: err.message, data: err.data ?? null }));
socket.on("disconnect", (reason) => print({ disconnect: reason }));
socket.onAny((event, ...args) => print({ event, args }));

// Close the socket (a DISCONNECT, then the transport) and let Node exit once it is flushed.
function quit() {
  socket.close();
  process.stdin.destroy();
  setTimeout(() => process.exit(0), 1000).unref();
}

const commands = readline.createInterface({ input: process.stdin });
commands.on("line", (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  if (command.close) {
    commands.close(); // quit() follows
  } else if (command.ack === undefined) {
    socket.emit(command.emit, ...(command.args || []));
  } else {
    socket.emit(command.emit, ...(command.args || []), (...answer) =>
      print({ ack: command.ack, args: answer }),
    );
  }
});
commands.on("close", quit);
