// MQTT.js, the client browsers use, against a Roost WebSocket listener.
//
//   node roundtrip.mjs URL [--version 3|4|5] [--ca FILE] [--topic T] [--count N]
//                          [--username U] [--client-id ID]
//
// Connects, subscribes to the topic at QoS 1, publishes COUNT messages to it at QoS 1,
// waits for them all to come back, and prints one JSON line: what it got. Exits 1,
// with the error on stderr, on any failure or after 20 seconds.
import { readFileSync } from "node:fs";
import mqtt from "mqtt";

const args = process.argv.slice(2);
const url = args.shift();
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const version = Number(option("version", "5"));
const topic = option("topic", "roost/js");
const count = Number(option("count", "3"));
const ca = option("ca", null);
const username = option("username", undefined);

const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 20000);

try {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: version,
    // MQTT 3.1 names itself MQIsdp; MQTT.js then offers the "mqttv3.1" sub-protocol.
    protocolId: version === 3 ? "MQIsdp" : "MQTT",
    clientId: option("client-id", `roost-js-${process.pid}`),
    username,
    ca: ca ? readFileSync(ca) : undefined,
    rejectUnauthorized: true,
    reconnectPeriod: 0,
    connectTimeout: 10000,
  });
  const received = [];
  const done = new Promise((resolve) => {
    client.on("message", (t, payload) => {
      received.push({ topic: t, payload: payload.toString() });
      if (received.length === count) resolve();
    });
  });
  const granted = await client.subscribeAsync(topic, { qos: 1 });
  for (let i = 0; i < count; i++) {
    // Every other message is large, so some span several WebSocket frames' worth of TCP.
    const payload = i % 2 ? `message ${i} ` + "x".repeat(70000) : `message ${i}`;
    await client.publishAsync(topic, payload, { qos: 1 });
  }
  await done;
  await client.endAsync();
  clearTimeout(timer);
  console.log(
    JSON.stringify({
      granted: granted.map((g) => g.qos),
      received: received.map((m) => ({ topic: m.topic, size: m.payload.length, head: m.payload.slice(0, 12) })),
    }),
  );
} catch (error) {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
}
