// MQTT.js receiving the topic aliases Roost sends (MQTT 5).
//
//   node aliases.mjs URL --maximum N --topics T1,T2,...
//
// Connects with Topic Alias Maximum N, subscribes to "ta/#" at QoS 1, publishes one
// QoS 1 message to each topic in turn (without aliases of its own), waits for them all
// to come back, and prints one JSON line: for each message received, the topic MQTT.js
// resolved and the Topic Alias the broker sent. Exits 1, with the error on stderr, on
// any failure (MQTT.js closes on an alias it cannot resolve) or after 20 seconds.
import mqtt from "mqtt";

const args = process.argv.slice(2);
const url = args.shift();
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : fallback;
};
const maximum = Number(option("maximum", "0"));
const topics = option("topics", "ta/a").split(",");

const timer = setTimeout(() => {
  console.error("timed out");
  process.exit(1);
}, 20000);

try {
  const client = await mqtt.connectAsync(url, {
    protocolVersion: 5,
    clientId: `roost-js-aliases-${process.pid}`,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    properties: maximum ? { topicAliasMaximum: maximum } : {},
  });
  client.on("error", (error) => {
    console.error(String(error));
    process.exit(1);
  });
  const received = [];
  const done = new Promise((resolve) => {
    client.on("message", (topic, payload, packet) => {
      const alias = packet.properties ? packet.properties.topicAlias : undefined;
      received.push({ topic, payload: payload.toString(), alias: alias ?? null });
      if (received.length === topics.length) resolve();
    });
  });
  await client.subscribeAsync("ta/#", { qos: 1 });
  for (const [i, topic] of topics.entries()) {
    await client.publishAsync(topic, `message ${i}`, { qos: 1 });
  }
  await done;
  await client.endAsync();
  clearTimeout(timer);
  console.log(JSON.stringify({ received }));
} catch (error) {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
}
