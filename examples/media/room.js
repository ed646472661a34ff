// Joins a roomd room with real media: the join extension (with the participant's Access Token)
// answers the participant and its `media`: { url, token, room, id }. janus.js opens a session
// on `url` with `token`, joins `room` as publisher `id` (with `token` again), publishes the
// camera and microphone, and subscribes to every other publisher of the room.
"use strict";
const params = new URLSearchParams(location.search);
// What the page shows of itself (a test reads it; nothing else needs it).
const state = (window.roomd = { participant: null, media: null, published: false,
  publisherUp: null, subscribed: {}, errors: [], ended: false, handles: [] });

async function join() {
  const room = encodeURIComponent(params.get("room"));
  const answer = await fetch(`${params.get("roomd")}/v1/Rooms/${room}/Participants`, {
    method: "POST",
    headers: { Authorization: `Bearer ${params.get("token")}` },
  });
  const participant = await answer.json();
  if (!answer.ok) throw new Error(`join refused: ${participant.code} ${participant.message}`);
  if (!participant.media) throw new Error("this roomd has no media plane");
  state.participant = participant;
  state.media = participant.media;
  return participant.media;
}

function connect(media) {
  Janus.init({ debug: false, callback: () => {
    const janus = new Janus({
      server: media.url,
      token: media.token,
      success: () => publish(janus, media),
      error: (e) => { state.errors.push(`session: ${e}`); state.ended = true; },
      destroyed: () => { state.ended = true; },
    });
  } });
}

function publish(janus, media) {
  let me;
  janus.attach({
    plugin: "janus.plugin.videoroom",
    success: (handle) => {
      me = handle;
      state.handles.push(handle);
      me.send({ message: { request: "join", ptype: "publisher", room: media.room,
        id: media.id, token: media.token, display: state.participant.identity } });
    },
    error: (e) => state.errors.push(`attach: ${e}`),
    webrtcState: (up) => { state.publisherUp = up; },
    onmessage: (msg, jsep) => {
      if (msg.error) state.errors.push(`${msg.error_code} ${msg.error}`);
      if (msg.videoroom === "joined") {
        me.createOffer({
          tracks: [{ type: "audio", capture: true, recv: false },
                   { type: "video", capture: true, recv: false }],
          success: (offer) => me.send({ message: { request: "publish" }, jsep: offer }),
          error: (e) => state.errors.push(`offer: ${JSON.stringify(e)}`),
        });
      }
      if (msg.configured === "ok") state.published = true;
      for (const publisher of msg.publishers || []) subscribe(janus, media, publisher.id);
      if (msg.leaving === "ok" || msg.videoroom === "destroyed") state.ended = true;
      if (jsep) me.handleRemoteJsep({ jsep });
    },
    onlocaltrack: (track, on) => {
      if (track.kind === "video" && on) document.getElementById("me").srcObject = new MediaStream([track]);
    },
    oncleanup: () => { state.published = false; },
  });
}

function subscribe(janus, media, feed) {
  if (state.subscribed[feed]) return;
  state.subscribed[feed] = { up: null, tracks: 0 };
  let handle;
  janus.attach({
    plugin: "janus.plugin.videoroom",
    success: (h) => {
      handle = h;
      state.handles.push(h);
      handle.send({ message: { request: "join", ptype: "subscriber", room: media.room,
        token: media.token, streams: [{ feed }] } });
    },
    error: (e) => state.errors.push(`subscribe: ${e}`),
    webrtcState: (up) => { state.subscribed[feed].up = up; },
    onmessage: (msg, jsep) => {
      if (msg.error) state.errors.push(`${msg.error_code} ${msg.error}`);
      if (!jsep) return;
      handle.createAnswer({
        jsep,
        tracks: [{ type: "data" }],
        success: (answer) => handle.send({ message: { request: "start" }, jsep: answer }),
        error: (e) => state.errors.push(`answer: ${JSON.stringify(e)}`),
      });
    },
    onremotetrack: (track, mid, on) => {
      if (!on) return;
      state.subscribed[feed].tracks++;
      if (track.kind === "video") {
        const video = document.createElement("video");
        Object.assign(video, { autoplay: true, playsInline: true, muted: true, width: 320, height: 240 });
        video.srcObject = new MediaStream([track]);
        document.getElementById("others").appendChild(video);
      }
    },
  });
}

join().then(connect).catch((e) => { state.errors.push(String(e)); state.ended = true; });
