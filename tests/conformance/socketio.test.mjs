// Port of the official Socket.IO protocol (v5, over Engine.IO v4 / EIO=4) test suite:
//   upstream: repository socketio/socket.io-protocol, file test-suite/test-suite.js
//   (the EIO=4 revision: mocha + chai + chai-string, node-fetch/global fetch, ws).
//   Upstream case count: 32 `it` cases
//     "Engine.IO protocol" 16: handshake 7 (HTTP long-polling 4, WebSocket 3),
//       heartbeat 4 (2 + 2), close 2 (1 + 1), upgrade 3;
//     "Socket.IO protocol" 16: connect 7, disconnect 2, message 7.
//   Ported case count: 32, same names, same describe nesting, same order, same bytes.
//
// Differences from upstream, none of which relaxes an expectation:
//   - the server is spawned by ./fixture.mjs (`sio-edge --conformance --host 127.0.0.1
//     --port 0`) instead of being expected at http://localhost:3000; all requests go to
//     `/socket.io/`, as upstream.
//   - mocha/chai -> node:test + node:assert/strict; mocha's timeouts are kept (2000 ms per
//     test, 5000 ms in "heartbeat"), see conformanceIt() in fixture.mjs.
//   - the `ws` client is configured to behave like the browser WebSocket upstream targets
//     (one event per task, dispatched in arrival order; "error" never throws), see fixture.mjs.
//   - "WebSocket / should fail with an invalid 'EIO'|'transport' query parameter": upstream
//     calls waitFor(socket, "close") without awaiting it (a check that cannot fail); here the
//     close events are awaited.
//   - on failure, the error message carries the exact frames/bodies exchanged (fixture.mjs).
//
// Server behaviour this suite relies on (the reference test server, = sio-edge --conformance):
// ping 300/200 ms, connectTimeout 1000 ms, namespaces "/" and "/custom"; on connect the
// server emits "auth" with the CONNECT payload; "message" -> emits "message-back" with the
// same args; "message-with-ack" -> acks with the same args.
//
// Timing note (inherited from upstream, not relaxed): "heartbeat / HTTP long-polling / should
// send ping/pong packets" never sends a Socket.IO CONNECT, so its three ping rounds (each next
// ping pingInterval after the previous pong, as in the reference engine.io) have to finish
// within connectTimeout (1000 ms). On a heavily loaded machine they may not, and the server -
// like the reference server - closes the session first: the third poll then answers "1".

import { describe, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer,
  conformanceIt,
  fetch,
  WebSocket,
  sleep,
  waitFor,
  assertStartsWith,
  assertAllKeys,
  assertIsString,
} from "./fixture.mjs";

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;

let server;
let URL; // e.g. http://127.0.0.1:PORT (upstream: "http://localhost:3000")
let WS_URL;

const it = (name, fn, opts = {}) => conformanceIt(name, fn, { server: () => server, ...opts });

function waitForPackets(socket, count) {
  const packets = [];

  return new Promise((resolve) => {
    const handler = (event) => {
      if (event.data === "2") {
        // ignore PING packets
        return;
      }
      packets.push(event.data);
      if (packets.length === count) {
        socket.removeEventListener("message", handler);
        resolve(packets);
      }
    };
    socket.addEventListener("message", handler);
  });
}

async function initLongPollingSession() {
  const response = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`);
  const content = await response.text();
  return JSON.parse(content.substring(1)).sid;
}

async function initSocketIOConnection() {
  const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);
  socket.binaryType = "arraybuffer";

  await waitFor(socket, "message"); // Engine.IO handshake

  socket.send("40");

  await waitFor(socket, "message"); // Socket.IO handshake
  await waitFor(socket, "message"); // "auth" packet

  return socket;
}

before(async () => {
  server = await startServer();
  URL = server.url;
  WS_URL = server.wsUrl;
});

after(async () => {
  if (server) await server.stop();
});

describe("Engine.IO protocol", () => {
  describe("handshake", () => {
    describe("HTTP long-polling", () => {
      it("should successfully open a session", async () => {
        const response = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`);

        assert.equal(response.status, 200);

        const content = await response.text();

        assertStartsWith(content, "0");

        const value = JSON.parse(content.substring(1));

        assertAllKeys(value, "sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload");
        assertIsString(value.sid);
        assert.deepEqual(value.upgrades, ["websocket"]);
        assert.equal(value.pingInterval, PING_INTERVAL);
        assert.equal(value.pingTimeout, PING_TIMEOUT);
        assert.equal(value.maxPayload, 1000000);
      });

      it("should fail with an invalid 'EIO' query parameter", async () => {
        const response = await fetch(`${URL}/socket.io/?transport=polling`);

        assert.equal(response.status, 400);

        const response2 = await fetch(`${URL}/socket.io/?EIO=abc&transport=polling`);

        assert.equal(response2.status, 400);
      });

      it("should fail with an invalid 'transport' query parameter", async () => {
        const response = await fetch(`${URL}/socket.io/?EIO=4`);

        assert.equal(response.status, 400);

        const response2 = await fetch(`${URL}/socket.io/?EIO=4&transport=abc`);

        assert.equal(response2.status, 400);
      });

      it("should fail with an invalid request method", async () => {
        const response = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`, {
          method: "post",
        });

        assert.equal(response.status, 400);

        const response2 = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`, {
          method: "put",
        });

        assert.equal(response2.status, 400);
      });
    });

    describe("WebSocket", () => {
      it("should successfully open a session", async () => {
        const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

        const { data } = await waitFor(socket, "message");

        assertStartsWith(data, "0");

        const value = JSON.parse(data.substring(1));

        assertAllKeys(value, "sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload");
        assertIsString(value.sid);
        assert.deepEqual(value.upgrades, []);
        assert.equal(value.pingInterval, PING_INTERVAL);
        assert.equal(value.pingTimeout, PING_TIMEOUT);
        assert.equal(value.maxPayload, 1000000);

        socket.close();
      });

      it("should fail with an invalid 'EIO' query parameter", async () => {
        const socket = new WebSocket(`${WS_URL}/socket.io/?transport=websocket`);

        socket.on("error", () => {});

        const closed = waitFor(socket, "close"); // upstream: not awaited

        const socket2 = new WebSocket(`${WS_URL}/socket.io/?EIO=abc&transport=websocket`);

        socket2.on("error", () => {});

        const closed2 = waitFor(socket2, "close"); // upstream: not awaited

        await closed;
        await closed2;
      });

      it("should fail with an invalid 'transport' query parameter", async () => {
        const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4`);

        socket.on("error", () => {});

        const closed = waitFor(socket, "close"); // upstream: not awaited

        const socket2 = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=abc`);

        socket2.on("error", () => {});

        const closed2 = waitFor(socket2, "close"); // upstream: not awaited

        await closed;
        await closed2;
      });
    });
  });

  describe("heartbeat", () => {
    const HEARTBEAT_TIMEOUT = { timeout: 5000 }; // upstream: this.timeout(5000)

    describe("HTTP long-polling", () => {
      it(
        "should send ping/pong packets",
        async () => {
          const sid = await initLongPollingSession();

          for (let i = 0; i < 3; i++) {
            const pollResponse = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`);

            assert.equal(pollResponse.status, 200);

            const pollContent = await pollResponse.text();

            assert.equal(pollContent, "2");

            const pushResponse = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
              method: "post",
              body: "3",
            });

            assert.equal(pushResponse.status, 200);
          }
        },
        HEARTBEAT_TIMEOUT
      );

      it(
        "should close the session upon ping timeout",
        async () => {
          const sid = await initLongPollingSession();

          await sleep(PING_INTERVAL + PING_TIMEOUT);

          const pollResponse = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`);

          assert.equal(pollResponse.status, 400);
        },
        HEARTBEAT_TIMEOUT
      );
    });

    describe("WebSocket", () => {
      it(
        "should send ping/pong packets",
        async () => {
          const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

          await waitFor(socket, "message"); // handshake

          for (let i = 0; i < 3; i++) {
            const { data } = await waitFor(socket, "message");

            assert.equal(data, "2");

            socket.send("3");
          }

          socket.close();
        },
        HEARTBEAT_TIMEOUT
      );

      it(
        "should close the session upon ping timeout",
        async () => {
          const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

          await waitFor(socket, "close"); // handshake
        },
        HEARTBEAT_TIMEOUT
      );
    });
  });

  describe("close", () => {
    describe("HTTP long-polling", () => {
      it("should forcefully close the session", async () => {
        const sid = await initLongPollingSession();

        const [pollResponse] = await Promise.all([
          fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`),
          fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
            method: "post",
            body: "1",
          }),
        ]);

        assert.equal(pollResponse.status, 200);

        const pullContent = await pollResponse.text();

        assert.equal(pullContent, "6");

        const pollResponse2 = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`);

        assert.equal(pollResponse2.status, 400);
      });
    });

    describe("WebSocket", () => {
      it("should forcefully close the session", async () => {
        const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

        await waitFor(socket, "message"); // handshake

        socket.send("1");

        await waitFor(socket, "close");
      });
    });
  });

  describe("upgrade", () => {
    it("should successfully upgrade from HTTP long-polling to WebSocket", async () => {
      const sid = await initLongPollingSession();

      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);

      await waitFor(socket, "open");

      // send probe
      socket.send("2probe");

      const probeResponse = await waitFor(socket, "message");

      assert.equal(probeResponse.data, "3probe");

      // complete upgrade
      socket.send("5");
    });

    it("should ignore HTTP requests with same sid after upgrade", async () => {
      const sid = await initLongPollingSession();

      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);

      await waitFor(socket, "open");
      socket.send("2probe");
      socket.send("5");

      const pollResponse = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`);

      assert.equal(pollResponse.status, 400);
    });

    it("should ignore WebSocket connection with same sid after upgrade", async () => {
      const sid = await initLongPollingSession();

      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);

      await waitFor(socket, "open");
      socket.send("2probe");
      socket.send("5");

      const socket2 = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);

      await waitFor(socket2, "close");
    });
  });
});

describe("Socket.IO protocol", () => {
  describe("connect", () => {
    it("should allow connection to the main namespace", async () => {
      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("40");

      const { data } = await waitFor(socket, "message");

      assertStartsWith(data, "40");

      const handshake = JSON.parse(data.substring(2));

      assertAllKeys(handshake, "sid");
      assertIsString(handshake.sid);

      const authPacket = await waitFor(socket, "message");

      assert.equal(authPacket.data, '42["auth",{}]');
    });

    it("should allow connection to the main namespace with a payload", async () => {
      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send('40{"token":"123"}');

      const { data } = await waitFor(socket, "message");

      assertStartsWith(data, "40");

      const handshake = JSON.parse(data.substring(2));

      assertAllKeys(handshake, "sid");
      assertIsString(handshake.sid);

      const authPacket = await waitFor(socket, "message");

      assert.equal(authPacket.data, '42["auth",{"token":"123"}]');
    });

    it("should allow connection to a custom namespace", async () => {
      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("40/custom,");

      const { data } = await waitFor(socket, "message");

      assertStartsWith(data, "40/custom,");

      const handshake = JSON.parse(data.substring(10));

      assertAllKeys(handshake, "sid");
      assertIsString(handshake.sid);

      const authPacket = await waitFor(socket, "message");

      assert.equal(authPacket.data, '42/custom,["auth",{}]');
    });

    it("should allow connection to a custom namespace with a payload", async () => {
      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send('40/custom,{"token":"abc"}');

      const { data } = await waitFor(socket, "message");

      assertStartsWith(data, "40/custom,");

      const handshake = JSON.parse(data.substring(10));

      assertAllKeys(handshake, "sid");
      assertIsString(handshake.sid);

      const authPacket = await waitFor(socket, "message");

      assert.equal(authPacket.data, '42/custom,["auth",{"token":"abc"}]');
    });

    it("should disallow connection to an unknown namespace", async () => {
      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("40/random");

      const { data } = await waitFor(socket, "message");

      assert.equal(data, '44/random,{"message":"Invalid namespace"}');
    });

    it("should disallow connection with an invalid handshake", async () => {
      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

      await waitFor(socket, "message"); // Engine.IO handshake

      socket.send("4abc");

      await waitFor(socket, "close");
    });

    it("should close the connection if no handshake is received", async () => {
      const socket = new WebSocket(`${WS_URL}/socket.io/?EIO=4&transport=websocket`);

      await waitFor(socket, "close");
    });
  });

  describe("disconnect", () => {
    it("should disconnect from the main namespace", async () => {
      const socket = await initSocketIOConnection();

      socket.send("41");

      const { data } = await waitFor(socket, "message");

      assert.equal(data, "2");
    });

    it("should connect then disconnect from a custom namespace", async () => {
      const socket = await initSocketIOConnection();

      await waitFor(socket, "message"); // ping

      socket.send("40/custom");

      await waitFor(socket, "message"); // Socket.IO handshake
      await waitFor(socket, "message"); // auth packet

      socket.send("41/custom");
      socket.send('42["message","message to main namespace"]');

      const { data } = await waitFor(socket, "message");

      assert.equal(data, '42["message-back","message to main namespace"]');
    });
  });

  describe("message", () => {
    it("should send a plain-text packet", async () => {
      const socket = await initSocketIOConnection();

      socket.send('42["message",1,"2",{"3":[true]}]');

      const { data } = await waitFor(socket, "message");

      assert.equal(data, '42["message-back",1,"2",{"3":[true]}]');
    });

    it("should send a packet with binary attachments", async () => {
      const socket = await initSocketIOConnection();

      socket.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      socket.send(Uint8Array.from([1, 2, 3]));
      socket.send(Uint8Array.from([4, 5, 6]));

      const packets = await waitForPackets(socket, 3);

      assert.equal(
        packets[0],
        '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
      );
      assert.deepEqual(packets[1], Uint8Array.from([1, 2, 3]).buffer);
      assert.deepEqual(packets[2], Uint8Array.from([4, 5, 6]).buffer);

      socket.close();
    });

    it("should send a plain-text packet with an ack", async () => {
      const socket = await initSocketIOConnection();

      socket.send('42456["message-with-ack",1,"2",{"3":[false]}]');

      const { data } = await waitFor(socket, "message");

      assert.equal(data, '43456[1,"2",{"3":[false]}]');
    });

    it("should send a packet with binary attachments and an ack", async () => {
      const socket = await initSocketIOConnection();

      socket.send(
        '452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
      );
      socket.send(Uint8Array.from([1, 2, 3]));
      socket.send(Uint8Array.from([4, 5, 6]));

      const packets = await waitForPackets(socket, 3);

      assert.equal(packets[0], '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepEqual(packets[1], Uint8Array.from([1, 2, 3]).buffer);
      assert.deepEqual(packets[2], Uint8Array.from([4, 5, 6]).buffer);

      socket.close();
    });

    it("should close the connection upon invalid format (unknown packet type)", async () => {
      const socket = await initSocketIOConnection();

      socket.send("4abc");

      await waitFor(socket, "close");
    });

    it("should close the connection upon invalid format (invalid payload format)", async () => {
      const socket = await initSocketIOConnection();

      socket.send("42{}");

      await waitFor(socket, "close");
    });

    it("should close the connection upon invalid format (invalid ack id)", async () => {
      const socket = await initSocketIOConnection();

      socket.send('42abc["message-with-ack",1,"2",{"3":[false]}]');

      await waitFor(socket, "close");
    });
  });
});
