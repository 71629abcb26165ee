/*
 * chatbot-auth-gateway frontend client, served at /auth/client.js (CONTRACT §8).
 *
 * Plain JavaScript, no build step, no dependencies. Two ways to load it:
 *
 *   <script src="/auth/client.js"></script>          defines window.createGatewayClient
 *   import { createGatewayClient } from "/auth/client.mjs";   ES module (a two-line wrapper
 *                                                    that imports this file and re-exports)
 *
 *   const gw = createGatewayClient({
 *     jwtFn: () => fetch("/my-site/chat-token").then((r) => r.text()),   // optional
 *     onOtpRequired: async ({ problem, send, verify, retry }) => { ... }, // optional
 *     base: "",                                                          // optional
 *   });
 *
 * jwtFn() returns (a promise of) a fresh JWT from the site's own backend, or null/"" when the
 * visitor is not signed in on the site (the client then stays anonymous). The client exchanges
 * the JWT once at POST /auth/session; later requests ride on the gateway's HttpOnly cookie.
 * The token is only ever held in a local variable for that one request: never stored
 * (no localStorage, no sessionStorage, no cookie of ours) and never put in a URL.
 *
 * Refresh: a 401 token_expired from the exchange, or a 401 token_expired / token_missing /
 * session_missing on a request (the session died: idle timeout, logout elsewhere), makes the
 * client call jwtFn once more, exchange the new token and retry the request ONCE. A second
 * failure is returned to the caller as it is: there is no loop.
 *
 * Step-up: a 401 otp_required calls onOtpRequired(step) once per request, where step is
 *   { problem, url, send(userId?), verify(code), retry() }
 *     problem       the 401's JSON body ({error: "otp_required", message, send, verify})
 *     url           the URL of the request that needs the code
 *     send(userId?) POST /auth/otp/send; resolves {channel, destination, expires_in, resend_in};
 *                   userId is the customer number for an anonymous visitor, omitted when
 *                   signed in (the gateway then sends to the signed-in user's own contact)
 *     verify(code)  POST /auth/otp/verify; resolves {user_id, level: "otp", otp_expires_at}
 *     retry()       sends the original request again; resolves its Response
 *   send and verify reject with a GatewayError (status, error, message, body) on refusal,
 *   e.g. error "otp_invalid" with body.attempts_left, "otp_locked", "rate_limited": the page
 *   may let the user try again. If onOtpRequired resolves to a Response (normally the one
 *   retry() gave), client.fetch resolves with it; otherwise (the user cancelled) client.fetch
 *   resolves with the original 401 response. A retry that meets otp_required again is
 *   returned as it is (onOtpRequired is not called twice for one request).
 *
 * Methods of the client:
 *   fetch(url, init)            like window.fetch (same result type), through the gateway
 *   websocket(url, protocols?, options?)  Promise<WebSocket>, resolved as soon as the socket
 *                               is created (attach listeners right away). By default it first
 *                               makes sure the session exists (the JWT exchange above) and the
 *                               handshake carries the cookie. With options {bearer: true} (may
 *                               also be passed as the second argument) it calls jwtFn and
 *                               offers the subprotocol pair "bearer", <jwt> instead; the gateway
 *                               strips both and echoes "bearer" (or the backend's choice among
 *                               your own protocols). Close codes: 4401 = session gone (logged
 *                               out, idle, or rotated by a login/verification: open a new
 *                               socket), 4403 = the route's level is no longer met (elevation
 *                               or token expired), 1009 = message too big.
 *   eventSource(url)            Promise<EventSource> after the same session check (extension)
 *   session()                   GET /auth/session: {user_id, level, expires_at,
 *                               otp_expires_at?} or null when there is no session
 *   sendOtp(userId?)            same as step.send
 *   verifyOtp(code)             same as step.verify
 *   logout()                    DELETE /auth/session (server-side destroy, cookie cleared)
 *
 * `base` is the gateway's origin when it is not the page's own (e.g. "https://chat.example");
 * requests then use credentials "include", otherwise "same-origin".
 */
(function (root) {
  "use strict";

  var REFRESH_ERRORS = ["token_expired", "token_missing", "session_missing"];

  class GatewayError extends Error {
    constructor(status, body) {
      var problem = body || {};
      super(problem.message || "gateway answered " + status);
      this.name = "GatewayError";
      this.status = status;
      this.error = problem.error || "http_" + status;
      this.body = problem;
    }
  }

  async function readProblem(response) {
    var type = response.headers.get("content-type") || "";
    if (type.indexOf("json") === -1) return {};
    try {
      var body = await response.clone().json();
      return body && typeof body === "object" ? body : {};
    } catch (_ignored) {
      return {};
    }
  }

  function createGatewayClient(options) {
    var opts = options || {};
    var jwtFn = typeof opts.jwtFn === "function" ? opts.jwtFn : null;
    var onOtpRequired = typeof opts.onOtpRequired === "function" ? opts.onOtpRequired : null;
    var base = String(opts.base || "").replace(/\/+$/, "");
    var credentials = base ? "include" : "same-origin";
    var nativeFetch = function (input, init) {
      return root.fetch(input, init);
    };
    // ready: the JWT (if any) has been exchanged for the cookie session.
    // generation: counts exchanges, so parallel 401s share one refresh.
    var state = { ready: false, pending: null, generation: 0 };

    function resolve(url) {
      var text = String(url);
      return base && text.charAt(0) === "/" && text.charAt(1) !== "/" ? base + text : text;
    }

    function authUrl(path, fromProblem) {
      // The 401 otp_required names the step-up URLs; a configured prefix is honoured that way.
      var given = typeof fromProblem === "string" && fromProblem.charAt(0) === "/";
      return resolve(given ? fromProblem : path);
    }

    async function freshToken() {
      var token = await jwtFn();
      return token ? String(token).trim() : "";
    }

    // One or two exchanges: the second only after a token_expired (the site's token was
    // stale). Resolves null on success (or no signed-in user), or the failing Response.
    async function exchange(attempts) {
      for (var attempt = 1; ; attempt++) {
        var token = await freshToken();
        if (!token) {
          state.ready = true; // not signed in on the site: stay anonymous
          return null;
        }
        var response = await nativeFetch(resolve("/auth/session"), {
          method: "POST",
          credentials: credentials,
          headers: { Authorization: "Bearer " + token },
        });
        token = "";
        if (response.ok) {
          state.ready = true;
          state.generation += 1;
          return null;
        }
        var problem = await readProblem(response);
        if (problem.error === "token_expired" && attempt < attempts) continue;
        return response;
      }
    }

    function shared(attempts) {
      if (!state.pending) {
        state.pending = exchange(attempts).finally(function () {
          state.pending = null;
        });
      }
      return state.pending;
    }

    function ensureSession() {
      if (!jwtFn || (state.ready && !state.pending)) return Promise.resolve(null);
      return shared(2);
    }

    async function refreshAfter(generation) {
      // Someone else refreshed since this request went out: just retry.
      if (state.generation !== generation && !state.pending) return null;
      if (state.pending) return state.pending;
      state.ready = false;
      return shared(1);
    }

    async function request(input, init, flags) {
      var failed = await ensureSession();
      if (failed) return failed;
      var generation = state.generation;
      var sent = Object.assign({}, init || {}, { credentials: credentials });
      var response = await nativeFetch(resolve(input), sent);
      if (response.status !== 401) return response;
      var problem = await readProblem(response);
      if (jwtFn && !flags.refreshed && REFRESH_ERRORS.indexOf(problem.error) !== -1) {
        var refused = await refreshAfter(generation);
        if (refused) return refused;
        // jwtFn gave no token (not signed in on the site): nothing new to retry with.
        if (state.generation === generation) return response;
        return request(input, init, { refreshed: true, stepped: flags.stepped });
      }
      if (problem.error === "otp_required" && onOtpRequired && !flags.stepped) {
        var outcome = await onOtpRequired({
          problem: problem,
          url: resolve(input),
          send: function (userId) {
            return sendOtp(userId, problem.send);
          },
          verify: function (code) {
            return verifyOtp(code, problem.verify);
          },
          retry: function () {
            return request(input, init, { refreshed: true, stepped: true });
          },
        });
        return outcome instanceof Response ? outcome : response;
      }
      return response;
    }

    async function postJson(url, body, expected) {
      var response = await nativeFetch(url, {
        method: "POST",
        credentials: credentials,
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (response.status !== expected) {
        throw new GatewayError(response.status, await readProblem(response));
      }
      return response.json();
    }

    async function sendOtp(userId, url) {
      await ensureSession();
      var body = userId === undefined || userId === null || userId === ""
        ? {}
        : { user_id: String(userId).trim() };
      return postJson(authUrl("/auth/otp/send", url), body, 202);
    }

    async function verifyOtp(code, url) {
      var result = await postJson(authUrl("/auth/otp/verify", url),
        { code: String(code).trim() }, 200);
      state.generation += 1; // the session id rotated
      return result;
    }

    async function session() {
      var response = await nativeFetch(resolve("/auth/session"), { credentials: credentials });
      if (response.status === 401) return null;
      if (!response.ok) throw new GatewayError(response.status, await readProblem(response));
      return response.json();
    }

    async function logout() {
      var response = await nativeFetch(resolve("/auth/session"), {
        method: "DELETE",
        credentials: credentials,
      });
      if (response.status !== 204 && !response.ok) {
        throw new GatewayError(response.status, await readProblem(response));
      }
      state.ready = false; // a signed-in site user gets a new session on the next request
    }

    function socketUrl(url) {
      var target = new URL(resolve(url), root.location ? root.location.href : undefined);
      if (target.protocol === "http:") target.protocol = "ws:";
      if (target.protocol === "https:") target.protocol = "wss:";
      return target.href;
    }

    async function websocket(url, protocols, options) {
      if (protocols && typeof protocols === "object" && !Array.isArray(protocols)) {
        options = protocols;
        protocols = undefined;
      }
      var extra = protocols === undefined || protocols === null
        ? []
        : [].concat(protocols);
      if (options && options.bearer) {
        if (!jwtFn) throw new Error("websocket(url, {bearer: true}) needs jwtFn");
        var token = await freshToken();
        if (!token) throw new Error("jwtFn gave no token for a bearer WebSocket");
        return new root.WebSocket(socketUrl(url), ["bearer", token].concat(extra));
      }
      var failed = await ensureSession();
      if (failed) throw new GatewayError(failed.status, await readProblem(failed));
      return new root.WebSocket(socketUrl(url), extra);
    }

    async function eventSource(url) {
      var failed = await ensureSession();
      if (failed) throw new GatewayError(failed.status, await readProblem(failed));
      return new root.EventSource(resolve(url), { withCredentials: credentials === "include" });
    }

    return {
      fetch: function (url, init) {
        return request(url, init, { refreshed: false, stepped: false });
      },
      websocket: websocket,
      eventSource: eventSource,
      session: session,
      sendOtp: function (userId) {
        return sendOtp(userId);
      },
      verifyOtp: function (code) {
        return verifyOtp(code);
      },
      logout: logout,
    };
  }

  createGatewayClient.GatewayError = GatewayError;
  root.createGatewayClient = createGatewayClient;
})(typeof globalThis !== "undefined" ? globalThis : this);
