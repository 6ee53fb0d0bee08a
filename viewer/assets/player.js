// The live player: one WebSocket per view (a wall or a camera).
//
//   fmp4  H.264 fragments into Media Source Extensions (when the browser plays the mime)
//   jpeg  one JPEG per binary message on an <img>, same WebSocket
//   mjpeg plain multipart MJPEG on an <img>: the fallback when the WebSocket route is not
//         there at all (the socket never opens while the server answers otherwise)
//
// It reconnects by itself with back-off (1, 2, 5, 10 s) when the socket closes or the
// picture stalls, keeps the video near the live edge (latency, not smoothness), and
// reports its state: connecting, live, reconnecting, sessionLost, forbidden (the server
// closed the view: no longer allowed to see it; no retry).

import { sessionAlive } from "./api.js";
import { h } from "./ui.js";

export const BACKOFF_SECONDS = [1, 2, 5, 10];
export const CLOSE_NOT_ALLOWED = 4003; // the server's code: no longer allowed to see this view
export const H264_MIME = 'video/mp4; codecs="avc1.42E01F"';
const STALL_MS = 5000;          // no frame for this long: the picture is stalled
const FIRST_FRAME_MS = 10000;   // connected but nothing comes
const MJPEG_FROZEN_MS = 15000;  // MJPEG: the picture has not changed for this long
const KEEP_SECONDS = 10;        // media buffer kept behind the play head
const MAX_LAG_SECONDS = 1.0;    // behind the live edge by more than this: jump...
// ...to this far behind it. Right at the edge Chromium underflows on every frame (each one
// arrives just in time) and drops them all; three frames' worth of cushion plays smoothly.
const TARGET_LAG_SECONDS = 0.3;
const MAX_QUEUE = 90;           // segments waiting to be appended: reconnect instead

export function mseSupports(mime = H264_MIME) {
  return typeof MediaSource !== "undefined" && MediaSource.isTypeSupported(mime);
}

function wsUrl(path) {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
}

function sameBytes(a, b) {
  if (a.byteLength !== b.byteLength) return false;
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

function isInitSegment(data) {
  if (data.byteLength < 8) return false;
  const kind = String.fromCharCode(...new Uint8Array(data, 4, 4));
  return kind === "ftyp" || kind === "moov";
}

export class LivePlayer {
  /**
   * stage: the element the media goes into (positioned; overlays may sit on top).
   * path: "/walls/ID" or "/cameras/ID".
   * onHello(message), onWall(wall), onState(state, detail): callbacks.
   */
  constructor({ stage, path, label = "", onHello = () => {}, onWall = () => {}, onState = () => {} }) {
    this.stage = stage;
    this.path = path;
    this.onHello = onHello;
    this.onWall = onWall;
    this.onState = onState;
    this.label = label;
    this.video = this.makeVideo();
    this.retiring = null; // the previous <video>, kept on screen until the new one plays
    this.img = h("img", { class: "live-media live-image", alt: label, decoding: "async" });
    stage.prepend(this.video, this.img);
    // ?transport=jpeg|mjpeg forces a transport (weak client, diagnosis); else the best one.
    const forced = new URLSearchParams(location.search).get("transport");
    this.mode = mseSupports() ? "fmp4" : "jpeg";
    if (forced === "jpeg" || forced === "mjpeg") this.mode = forced;
    this.gen = 0;
    this.failures = 0;
    this.wsFailuresBeforeOpen = 0;
    this.wsWorked = false;
    this.everLive = false;
    this.state = "idle";
    this.frames = 0;
    this.totalFrames = 0;
    this.timelines = 0; // MediaSources set up so far: one per connection or server encoder
    this.stopped = true;
    this.retryTimer = null;
    this.watchdog = null;
    this.jpegUrl = null;
    this.fmp4Played = false;
    this.fmp4Failures = 0;
  }

  makeVideo() {
    const video = h("video", { class: "live-media live-video", playsinline: true, muted: true,
      "aria-label": this.label, disablepictureinpicture: true });
    video.muted = true;
    video.addEventListener("seeking", () => {
      if (video === this.video) this.firstTime = null;
    });
    video.addEventListener("playing", () => {
      if (video !== this.video) return;
      this.fmp4Played = true;
      if (this.retiring) this.dropVideo(this.retiring); // the new picture is there: swap
    });
    video.addEventListener("timeupdate", () => {
      if (video !== this.video) return;
      const time = video.currentTime;
      if (time === this.lastTime) return;
      if (this.firstTime === null) this.firstTime = time;
      this.lastTime = time;
      this.lastProgress = performance.now();
      // Live once the picture really moves, not at the first frame shown.
      if (this.mode === "fmp4" && time - this.firstTime > 0.3) this.markLive();
    });
    return video;
  }

  dropVideo(video) {
    if (video === this.retiring) this.retiring = null;
    video.removeAttribute("src");
    video.load();
    if (video.objectUrl) URL.revokeObjectURL(video.objectUrl);
    video.objectUrl = null;
    if (video !== this.video) video.remove();
  }

  /** No picture: another wall or camera is coming (the old one must not linger). */
  blank() {
    if (this.retiring) this.dropVideo(this.retiring);
    this.dropVideo(this.video);
    if (this.jpegUrl) URL.revokeObjectURL(this.jpegUrl);
    this.jpegUrl = null;
    this.img.removeAttribute("src");
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.watchdog = setInterval(() => this.check(), 250);
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    this.active = false;
    this.teardown(true);
    this.setState("idle");
  }

  /** Switch to another wall or camera without reloading the page. */
  setPath(path, label = "") {
    this.path = path;
    this.label = label;
    this.blank();
    this.video.setAttribute("aria-label", label);
    this.img.alt = label;
    this.failures = 0;
    this.everLive = false;
    clearTimeout(this.retryTimer);
    if (!this.stopped) this.connect();
  }

  /** For tests and the status line. */
  info() {
    return { mode: this.mode, state: this.state, frames: this.totalFrames, failures: this.failures,
      timelines: this.timelines };
  }

  setState(state, detail = {}) {
    this.state = state;
    this.stage.dataset.state = state;
    this.stage.dataset.transport = this.mode;
    this.onState(state, { transport: this.mode, ...detail });
  }

  markLive() {
    if (this.stopped || !this.active || this.state === "live") return;
    this.failures = 0;
    this.everLive = true;
    this.setState("live");
  }

  // -- connection --------------------------------------------------------------------------
  connect() {
    clearTimeout(this.retryTimer);
    this.teardown(false);
    const gen = ++this.gen;
    this.frames = 0;
    this.opened = false;
    this.connectStarted = performance.now();
    this.lastFrame = 0;
    this.lastProgress = performance.now();
    this.lastTime = -1;
    this.firstTime = null;
    this.active = true;
    this.setState(this.everLive ? "reconnecting" : "connecting");
    this.stage.classList.toggle("show-image", this.mode !== "fmp4");
    if (this.mode === "mjpeg") {
      this.connectMjpeg(gen);
      return;
    }
    let ws;
    try {
      ws = new WebSocket(wsUrl(`${this.path}/ws?format=${this.mode}`));
    } catch (error) {
      this.failed(gen, `websocket: ${error.message}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      this.opened = true;
      this.openedAt = performance.now();
    };
    ws.onmessage = (event) => {
      if (gen !== this.gen) return;
      if (typeof event.data === "string") this.onText(gen, event.data);
      else this.onBinary(gen, event.data);
    };
    ws.onclose = (event) => {
      if (gen !== this.gen) return;
      this.ws = null;
      if (event.code === CLOSE_NOT_ALLOWED) {
        this.refused(event.reason);
        return;
      }
      this.failed(gen, `socket closed (${event.code})`);
    };
  }

  onText(gen, text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.type === "hello") {
      this.wsWorked = true;
      this.wsFailuresBeforeOpen = 0;
      const format = message.format || this.mode;
      if (format === "fmp4" && !mseSupports(message.mime || H264_MIME)) {
        this.mode = "jpeg"; // this browser cannot play that H.264 profile: pictures instead
        this.connect();
        return;
      }
      this.mode = format === "fmp4" ? "fmp4" : "jpeg";
      this.stage.dataset.transport = this.mode;
      this.stage.classList.toggle("show-image", this.mode !== "fmp4");
      if (this.mode === "fmp4") this.setupMse(gen, message.mime || H264_MIME);
      this.onHello(message);
    } else if (message.type === "wall" && message.wall) {
      this.onWall(message.wall);
    }
  }

  onBinary(gen, data) {
    this.lastFrame = performance.now();
    if (this.mode === "fmp4") {
      if (!this.queue) return; // no hello yet: not ours to guess
      if (isInitSegment(data)) {
        if (this.initSegment && !this.mediaSinceInit && sameBytes(this.initSegment, data)) return; // a repeat
        // After media: a new encoder on the server (the wall was rebuilt: layout, cameras)
        // whose timeline starts again; a fresh MediaSource rather than two timelines mixed.
        if (this.mediaSinceInit) this.setupMse(gen, this.mime);
        this.initSegment = data;
        this.mediaSinceInit = 0;
      } else {
        this.mediaSinceInit++;
      }
      this.queue.push(data);
      if (this.queue.length > MAX_QUEUE) {
        this.failed(gen, "video cannot keep up");
        return;
      }
      this.pump(gen);
    } else {
      this.showJpeg(data);
    }
  }

  /**
   * The server closed the view: what it shows is no longer ours to see (an operator put
   * another commune's camera on the wall, the camera moved to another commune) or the
   * session ended. No retry: the picture goes, and the page says why.
   */
  refused(reason) {
    if (this.stopped) return;
    this.gen++;
    this.stopped = true;
    this.active = false;
    clearInterval(this.watchdog);
    clearTimeout(this.retryTimer);
    this.teardown(true);
    this.setState(reason === "session ended" ? "sessionLost" : "forbidden", { reason });
  }

  failed(gen, reason) {
    if (gen !== this.gen || this.stopped) return;
    this.gen++; // ignore whatever the old connection still says
    this.active = false;
    console.info(`vigie: ${this.path}: ${reason}`);
    if (!this.opened && this.mode !== "mjpeg" && !this.wsWorked) this.wsFailuresBeforeOpen++;
    if (this.mode === "fmp4" && this.frames > 1 && !this.fmp4Played && ++this.fmp4Failures >= 2) {
      this.mode = "jpeg"; // the browser takes the fragments but never plays them
    }
    this.teardown(false);
    const delay = BACKOFF_SECONDS[Math.min(this.failures, BACKOFF_SECONDS.length - 1)];
    this.failures++;
    this.setState("reconnecting", { retryIn: delay, reason });
    this.retryTimer = setTimeout(() => this.retry(), delay * 1000);
  }

  async retry() {
    if (this.stopped) return;
    const alive = await sessionAlive();
    if (this.stopped) return;
    if (alive === false) {
      this.setState("sessionLost"); // the page decides (login page, or a notice on a kiosk)
      this.retryTimer = setTimeout(() => this.retry(), 10000);
      return;
    }
    // The socket never opened twice while the server answers: no WebSocket route here.
    if (alive === true && this.mode !== "mjpeg" && !this.wsWorked && this.wsFailuresBeforeOpen >= 2) {
      this.mode = "mjpeg";
    }
    this.connect();
  }

  teardown(final) {
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
    if (this.ms) {
      try {
        if (this.ms.readyState === "open") this.ms.endOfStream();
      } catch {
        // closing anyway
      }
      this.ms = null;
    }
    this.sb = null;
    this.queue = null;
    this.video.pause(); // the last picture stays, frozen: what is left buffered is not live
    if (this.img.dataset.mjpeg) {
      delete this.img.dataset.mjpeg;
      this.img.removeAttribute("src"); // ends the multipart download
    }
    this.pendingJpeg = null;
    this.decodingJpeg = false;
    if (final) this.blank();
  }

  // -- H.264 into Media Source Extensions --------------------------------------------------
  setupMse(gen, mime) {
    if (this.ms) {
      try {
        if (this.ms.readyState === "open") this.ms.endOfStream();
      } catch {
        // replaced anyway
      }
    }
    this.mime = mime;
    this.timelines++;
    this.sb = null;
    this.initSegment = null;
    this.mediaSinceInit = 0;
    this.firstTime = null;
    this.lastProgress = performance.now();
    if (this.video.getAttribute("src")) {
      // Keep the picture on screen (a wall rebuilt, a reconnection) until the new video
      // plays: the fresh element goes underneath the one showing the last frame.
      const current = this.video;
      this.video = this.makeVideo();
      if (this.retiring) this.dropVideo(current); // that one never got going
      else this.retiring = current;
      this.retiring.before(this.video);
    }
    const ms = new MediaSource();
    this.ms = ms;
    this.queue = [];
    this.video.objectUrl = URL.createObjectURL(ms);
    this.video.src = this.video.objectUrl;
    ms.addEventListener("sourceopen", () => {
      if (gen !== this.gen || ms !== this.ms) return;
      try {
        const sb = ms.addSourceBuffer(mime);
        sb.mode = "segments";
        // An endless stream: Chromium then treats it as live and renders each frame as soon
        // as it is decoded, instead of waiting for a few frames ahead after every underflow.
        ms.duration = Infinity;
        sb.addEventListener("updateend", () => {
          if (gen !== this.gen || sb !== this.sb) return;
          this.chaseLiveEdge();
          this.pump(gen);
        });
        sb.addEventListener("error", () => sb === this.sb && this.failed(gen, "source buffer error"));
        this.sb = sb;
        this.pump(gen);
      } catch (error) {
        this.failed(gen, `media source: ${error.message}`);
      }
    }, { once: true });
  }

  pump(gen) {
    const sb = this.sb;
    if (!sb || sb.updating || !this.ms || this.ms.readyState !== "open") return;
    const video = this.video;
    const buffered = sb.buffered;
    if (buffered.length) {
      const start = buffered.start(0);
      const end = buffered.end(buffered.length - 1);
      if (video.currentTime - start > KEEP_SECONDS + 5) {
        sb.remove(start, video.currentTime - KEEP_SECONDS);
        return; // continues on updateend
      }
      if (end - start > 3 * KEEP_SECONDS) {
        // The play head is not moving (a hidden tab): keep memory bounded all the same; the
        // jump to the live edge follows when the page is shown again.
        sb.remove(start, end - KEEP_SECONDS);
        return;
      }
    }
    const next = this.queue.shift();
    if (!next) return;
    try {
      sb.appendBuffer(next);
      if (this.frames++ > 0) this.totalFrames++;
    } catch (error) {
      if (error.name === "QuotaExceededError" && buffered.length) {
        this.queue.unshift(next);
        sb.remove(buffered.start(0), Math.max(buffered.start(0) + 0.1, video.currentTime - 1));
      } else {
        this.failed(gen, `append: ${error.message}`);
      }
    }
  }

  chaseLiveEdge() {
    const video = this.video;
    const buffered = video.buffered;
    if (!buffered.length) return;
    const last = buffered.length - 1;
    const end = buffered.end(last);
    const lag = end - video.currentTime;
    if (video.currentTime < buffered.start(last) || lag > MAX_LAG_SECONDS) {
      video.currentTime = Math.max(buffered.start(last), end - TARGET_LAG_SECONDS);
      video.playbackRate = 1;
    } else if (!video.paused) {
      // The server's clock and ours drift a little: a rate change nobody can see keeps the
      // cushion instead of running dry (an underflow) or growing (latency).
      if (lag < TARGET_LAG_SECONDS - 0.1 && video.playbackRate >= 1) video.playbackRate = 0.95;
      else if (lag > TARGET_LAG_SECONDS + 0.3 && video.playbackRate <= 1) video.playbackRate = 1.05;
      else if (Math.abs(lag - TARGET_LAG_SECONDS) < 0.05 && video.playbackRate !== 1) video.playbackRate = 1;
    }
    // Start (and restart after a pause) only with a little buffered ahead.
    if (video.paused && video.readyState >= 2 && end - video.currentTime >= TARGET_LAG_SECONDS - 0.05) {
      video.play().catch(() => {});
    }
  }

  // -- JPEG over the socket ----------------------------------------------------------------
  showJpeg(data) {
    if (this.decodingJpeg) {
      this.pendingJpeg = data; // only the latest matters
      return;
    }
    this.decodingJpeg = true;
    const url = URL.createObjectURL(new Blob([data], { type: "image/jpeg" }));
    const gen = this.gen;
    const done = () => {
      if (this.jpegUrl && this.jpegUrl !== url) URL.revokeObjectURL(this.jpegUrl);
      this.jpegUrl = url;
      if (gen !== this.gen) return;
      this.decodingJpeg = false;
      this.totalFrames++;
      this.frames++;
      this.markLive();
      const pending = this.pendingJpeg;
      this.pendingJpeg = null;
      if (pending) this.showJpeg(pending);
    };
    this.img.onload = done;
    this.img.onerror = done;
    this.img.src = url;
  }

  // -- MJPEG fallback ----------------------------------------------------------------------
  connectMjpeg(gen) {
    this.img.onload = () => {
      if (gen !== this.gen) return;
      this.opened = true;
      this.lastFrame = performance.now();
      this.frames++;
      this.totalFrames++;
      this.markLive();
    };
    this.img.onerror = () => this.failed(gen, "mjpeg error");
    this.img.dataset.mjpeg = "1";
    this.signature = null;
    this.img.src = `${this.path}/mjpeg`;
  }

  mjpegSignature() {
    if (!this.canvas) {
      this.canvas = document.createElement("canvas");
      this.canvas.width = 64;
      this.canvas.height = 36;
      this.context = this.canvas.getContext("2d", { willReadFrequently: true });
    }
    try {
      this.context.drawImage(this.img, 0, 0, 64, 36);
      const pixels = this.context.getImageData(0, 0, 64, 36).data;
      let hash = 0;
      for (let i = 0; i < pixels.length; i += 1) hash = (hash * 31 + pixels[i]) | 0;
      return hash;
    } catch {
      return null;
    }
  }

  // -- watchdog ------------------------------------------------------------------------------
  check() {
    if (this.stopped || !this.active) return;
    const gen = this.gen;
    const now = performance.now();
    if (this.mode === "mjpeg") {
      if (now - (this.lastMjpegCheck || 0) < 1000) return;
      this.lastMjpegCheck = now;
      if (!this.img.dataset.mjpeg || !this.img.complete || !this.img.naturalWidth) {
        if (now - this.connectStarted > FIRST_FRAME_MS) this.failed(gen, "mjpeg: no picture");
        return;
      }
      const signature = this.mjpegSignature();
      if (signature !== this.signature) {
        this.signature = signature;
        this.lastFrame = now;
        this.totalFrames++;
        this.markLive();
      } else if (!document.hidden && now - this.lastFrame > MJPEG_FROZEN_MS) {
        this.failed(gen, "mjpeg: picture frozen");
      }
      return;
    }
    if (!this.ws) return;
    if (!this.opened) {
      if (now - this.connectStarted > FIRST_FRAME_MS) this.failed(gen, "connect timeout");
      return;
    }
    if (!this.lastFrame) {
      if (now - this.openedAt > FIRST_FRAME_MS) this.failed(gen, "no first frame");
      return;
    }
    if (now - this.lastFrame > STALL_MS) {
      this.failed(gen, "no frame received");
      return;
    }
    if (this.mode === "fmp4" && !document.hidden) {
      const video = this.video;
      this.chaseLiveEdge();
      if (now - this.lastProgress > STALL_MS && this.frames > 1) this.failed(gen, "video stalled");
    }
  }
}
