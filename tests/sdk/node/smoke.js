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

  // Participants: joined through roomd's join API (an Access Token minted by the library itself,
  // and Basic auth + Identity), then read, kicked and anonymized through the library.
  const join = async (roomName, headers, form = {}) => {
    const r = await fetch(`${baseUrl}/v1/Rooms/${encodeURIComponent(roomName)}/Participants`, {
      method: "POST", headers: { ...headers, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form).toString(),
    });
    return [r.status, await r.json()];
  };
  const people = await rooms.create({ uniqueName: `people-${run}`, maxParticipants: 5 });
  const token = new twilio.jwt.AccessToken(accountSid, keySid, keySecret, { identity: "alice" });
  token.addGrant(new twilio.jwt.AccessToken.VideoGrant({ room: people.uniqueName }));
  const [s1, alice] = await join(people.uniqueName, { Authorization: `Bearer ${token.toJwt()}` });
  check("join with an Access Token", s1 === 201 && alice.identity === "alice", alice);
  const basic = `Basic ${Buffer.from(`${accountSid}:${authToken}`).toString("base64")}`;
  const [s2, bob] = await join(people.sid, { Authorization: basic }, { Identity: "bob" });
  check("join with Basic auth + Identity", s2 === 201 && bob.room_sid === people.sid, bob);
  const participants = rooms(people.sid).participants;
  const peopleListed = await participants.list();
  check("participants list, join order", peopleListed.map((p) => p.identity).join() === "alice,bob", peopleListed.map((p) => p.identity));
  const first = peopleListed[0];
  check("participant fields and types", first.sid.startsWith("PA") && first.status === "connected"
    && first.startTime instanceof Date && first.endTime === null && first.duration === null, first.toJSON());
  check("fetch participant by sid", (await participants(alice.sid).fetch()).identity === "alice");
  check("fetch participant by identity", (await rooms(people.uniqueName).participants("alice").fetch()).sid === alice.sid);
  const kicked = await participants("bob").update({ status: "disconnected" });
  check("kick", kicked.status === "disconnected" && Number.isInteger(kicked.duration) && kicked.endTime instanceof Date, kicked.toJSON());
  await expectError("kicking twice is 400/53204", () => participants(bob.sid).update({ status: "disconnected" }), 400, 53204);
  const anonymized = await participants(bob.sid).anonymize().update();
  check("anonymize", anonymized.identity === bob.sid, anonymized.toJSON());
  const ended = await rooms(people.sid).update({ status: "completed" });
  const aliceAfter = await participants(alice.sid).fetch();
  check("completing the room disconnects everyone at its end time", aliceAfter.status === "disconnected"
    && aliceAfter.endTime.getTime() === ended.endTime.getTime(), aliceAfter.toJSON());

  // Tracks: published through roomd's publishing API, read through the library.
  const studio = await rooms.create({ uniqueName: `studio-${run}` });
  const members = {};
  for (const who of ["ann", "ben", "cat"]) members[who] = (await join(studio.sid, { Authorization: basic }, { Identity: who }))[1].sid;
  for (const who of ["ann", "ben"]) {
    for (const kind of ["audio", "video"]) {
      const r = await fetch(`${baseUrl}/v1/Rooms/${studio.sid}/Participants/${who}/PublishedTracks`, {
        method: "POST", headers: { Authorization: basic, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ Kind: kind, Name: `${who}-${kind}` }).toString(),
      });
      check(`publish ${who}'s ${kind}`, r.status === 201);
    }
  }
  const benP = rooms(studio.sid).participants(members.ben);
  const published = await benP.publishedTracks.list();
  check("published tracks list", published.map((t) => t.name).sort().join() === "ben-audio,ben-video", published.map((t) => t.name));
  check("published track fetch", (await benP.publishedTracks(published[0].sid).fetch()).name === published[0].name);
  const catP = rooms(studio.sid).participants(members.cat);
  const names = async () => (await catP.subscribedTracks.list()).map((t) => t.name).sort().join();
  check("subscribed tracks, all by default", (await names()) === "ann-audio,ann-video,ben-audio,ben-video");
  await catP.subscribeRules.update({ rules: [{ type: "include", all: true }, { type: "exclude", publisher: "ben", kind: "video" }] });
  check("an excluded video disappears from subscribed tracks", (await names()) === "ann-audio,ann-video,ben-audio");
  const recording = rooms(studio.sid).recordingRules;
  check("recording rules, none by default", (await recording.fetch()).rules.length === 0);
  const replaced = await recording.update({ rules: [{ type: "include", kind: "audio" }] });
  check("recording rules replaced", JSON.stringify(replaced.rules) === JSON.stringify([{ type: "include", kind: "audio" }]), replaced.rules);

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
