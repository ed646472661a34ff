// Smoke test through the official twilio-node client against a running roomd.
// Usage: node smoke.js BASE_URL ACCOUNT_SID AUTH_TOKEN API_KEY_SID API_KEY_SECRET. Only the base URL
// changes.
"use strict";
const twilio = require("twilio");

const [baseUrl, accountSid, authToken, keySid, keySecret] = process.argv.slice(2);
const client = twilio(accountSid, authToken);
client.video.baseUrl = baseUrl;
const rooms = client.video.v1.rooms;

const results = [];
function check(name, ok, detail) {
  results.push(Boolean(ok));
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok ? "" : `: ${detail === undefined ? "" : JSON.stringify(detail)}`}`);
}
async function expectError(name, fn, status, code) {
  try {
    await fn();
    check(name, false, "no exception");
  } catch (e) {
    check(name, e.status === status && e.code === code, { status: e.status, code: e.code, message: e.message });
  }
}

(async () => {
  const run = `${Date.now()}`;
  const room = await rooms.create({
    uniqueName: `node-${run}`,
    videoCodecs: ["VP8", "H264"],
    recordingRules: [{ type: "include", all: true }],
    recordParticipantsOnConnect: true,
    maxParticipantDuration: 600,
  });
  check("create", room.sid.startsWith("RM") && room.uniqueName === `node-${run}`, room);
  check("fields and types", room.status === "in-progress" && room.dateCreated instanceof Date
    && room.maxParticipantDuration === 600 && room.videoCodecs.length === 2 && room.endTime === null
    && room.url === `${baseUrl}/v1/Rooms/${room.sid}`, room.toJSON());
  check("fetch by sid", (await rooms(room.sid).fetch()).uniqueName === `node-${run}`);
  check("fetch by name", (await rooms(`node-${run}`).fetch()).sid === room.sid);
  await expectError("duplicate name is 400/53113", () => rooms.create({ uniqueName: `node-${run}` }), 400, 53113);
  await expectError("unknown room is 404/20404", () => rooms(`nope-${run}`).fetch(), 404, 20404);
  await expectError("bad type is 400/53108", () => rooms.create({ type: "huge" }), 400, 53108);

  const created = new Set([room.sid]);
  for (let i = 0; i < 6; i++) created.add((await rooms.create({ uniqueName: `node-${run}-${i}` })).sid);
  const listed = (await rooms.list({ pageSize: 4 })).map((r) => r.sid);
  check("list({pageSize: 4}) walks every page once",
    [...created].every((s) => listed.includes(s)) && new Set(listed).size === listed.length, listed.length);
  const eached = [];
  await new Promise((resolve, reject) => rooms.each({ pageSize: 2, limit: 5, done: (e) => (e ? reject(e) : resolve()) },
    (r) => eached.push(r.sid)));
  check("each({limit: 5}) stops at five", eached.length === 5 && new Set(eached).size === 5, eached);
  const page = await rooms.page({ pageSize: 3 });
  const next = await page.nextPage();
  check("page().nextPage()", next && next.instances.length === 3 && next.instances.every((r) => !page.instances.some((p) => p.sid === r.sid)));
  check("uniqueName filter", (await rooms.list({ uniqueName: `node-${run}` })).map((r) => r.sid).join() === room.sid);
  const since = new Date(Date.now() - 5 * 60 * 1000);
  check("dateCreatedAfter filter",
    (await rooms.list({ dateCreatedAfter: since, pageSize: 100 })).filter((r) => created.has(r.sid)).length === created.size);

  const done = await rooms(room.sid).update({ status: "completed" });
  check("complete", done.status === "completed" && done.endTime instanceof Date && Number.isInteger(done.duration), done.toJSON());
  await expectError("complete twice is 400/53118", () => rooms(room.sid).update({ status: "completed" }), 400, 53118);
  check("status completed filter", (await rooms.list({ status: "completed" })).some((r) => r.sid === room.sid));

  const byKey = twilio(keySid, keySecret, { accountSid });
  byKey.video.baseUrl = baseUrl;
  const keyed = await byKey.video.v1.rooms.create({ uniqueName: `node-key-${run}` });
  check("an API key creates rooms of its account", keyed.accountSid === accountSid, keyed.accountSid);
  check("the account sees the key's room", (await rooms(keyed.sid).fetch()).uniqueName === `node-key-${run}`);

  const bad = twilio(accountSid, "0".repeat(32));
  bad.video.baseUrl = baseUrl;
  await expectError("wrong token is 401/20003", () => bad.video.v1.rooms(room.sid).fetch(), 401, 20003);

  const failed = results.filter((r) => !r).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.error("FAIL unexpected error:", e);
  process.exit(1);
});
