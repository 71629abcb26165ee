// The demo chat page. Every request to the bot goes through the gateway's client: the page
// holds no token, no session logic and no OTP logic of its own, only the dialogs.
import { createGatewayClient } from "/auth/client.mjs";

const TEXT = {
  en: {
    title: "Demo Bank chat",
    login: "Website login as Alice",
    logout: "Log out",
    otpIntro: "The balance needs a one-time code.",
    numberLabel: "Your customer number",
    sendCode: "Send code",
    codeLabel: "Code",
    verify: "Confirm",
    cancel: "Cancel",
    placeholder: "Write a message…",
    send: "Send",
    balance: "Show balance",
    footer: "Served by the demo bot through the gateway. Codes appear on the gateway's console.",
    noSession: "no session yet",
    welcome: "Hello! Chat with me anonymously. Ask for your balance with the yellow button.",
    seen: (who) => `the bot saw sender ${who}`,
    needsCode: "⚠ The balance needs a one-time code.",
    codeSent: (r) => `Code sent by ${r.channel === "sms" ? "SMS" : "e-mail"} to ${r.destination}. `
      + "In the demo it appears on the gateway's console.",
    codeFor: (r) => `Code sent to ${r.destination}`,
    verified: (r) => `✔ Verified as ${r.user_id} until ${clock(r.otp_expires_at)}.`,
    balanceIs: (b) => `Balance of ${b.user_id}: ${b.balance}`,
    refused: (code) => `✖ Balance refused (${code}).`,
    loggedOut: "Logged out: the session is gone on the gateway.",
    signedIn: (s) => `Signed in on the website as ${s.user_id} (${s.level}).`,
    wrongCode: (e) => e.body.attempts_left !== undefined
      ? `Wrong code, ${e.body.attempts_left} tries left.` : e.message,
    needNumber: "Please enter your customer number.",
    error: (e) => `Something went wrong: ${e.message || e}`,
  },
  de: {
    title: "Demo-Bank Chat",
    login: "Website-Login als Alice",
    logout: "Abmelden",
    otpIntro: "Der Kontostand braucht einen Einmalcode.",
    numberLabel: "Ihre Kundennummer",
    sendCode: "Code senden",
    codeLabel: "Code",
    verify: "Bestätigen",
    cancel: "Abbrechen",
    placeholder: "Nachricht schreiben…",
    send: "Senden",
    balance: "Kontostand zeigen",
    footer: "Vom Demo-Bot durch das Gateway ausgeliefert. Codes erscheinen in der Gateway-Konsole.",
    noSession: "noch keine Sitzung",
    welcome: "Hallo! Chatten Sie anonym mit mir. Den Kontostand zeigt der gelbe Knopf.",
    seen: (who) => `der Bot sah Absender ${who}`,
    needsCode: "⚠ Der Kontostand braucht einen Einmalcode.",
    codeSent: (r) => `Code per ${r.channel === "sms" ? "SMS" : "E-Mail"} an ${r.destination} `
      + "gesendet. In der Demo steht er in der Gateway-Konsole.",
    codeFor: (r) => `Code an ${r.destination}`,
    verified: (r) => `✔ Bestätigt als ${r.user_id} bis ${clock(r.otp_expires_at)} Uhr.`,
    balanceIs: (b) => `Kontostand von ${b.user_id}: ${b.balance}`,
    refused: (code) => `✖ Kontostand verweigert (${code}).`,
    loggedOut: "Abgemeldet: die Sitzung ist im Gateway gelöscht.",
    signedIn: (s) => `Auf der Website angemeldet als ${s.user_id} (${s.level}).`,
    wrongCode: (e) => e.body.attempts_left !== undefined
      ? `Falscher Code, noch ${e.body.attempts_left} Versuche.` : e.message,
    needNumber: "Bitte geben Sie Ihre Kundennummer ein.",
    error: (e) => `Etwas ging schief: ${e.message || e}`,
  },
};

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let lang = params.get("lang") || ((navigator.language || "en").startsWith("de") ? "de" : "en");
if (!TEXT[lang]) lang = "en";
const t = (key, ...args) => {
  const value = TEXT[lang][key];
  return typeof value === "function" ? value(...args) : value;
};
const clock = (epoch) => new Date(epoch * 1000).toLocaleTimeString(lang, {
  hour: "2-digit", minute: "2-digit",
});

// --- The website's login, simulated ------------------------------------------------------
// A real site knows whether its user is signed in; jwtFn asks the site's backend (here the
// demo bot's /demo/token) for a fresh JWT, or returns null for an anonymous visitor.
let siteUser = null;

function makeClient() {
  return createGatewayClient({
    jwtFn: async () => {
      if (!siteUser) return null;
      const response = await fetch(`/demo/token?user=${encodeURIComponent(siteUser)}`);
      return response.ok ? response.text() : null;
    },
    onOtpRequired: (step) => otpDialog(step),
  });
}

let gw = makeClient();

// --- The log ------------------------------------------------------------------------------
function say(kind, text, meta) {
  const item = document.createElement("li");
  item.className = kind;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.textContent = text;
  item.append(bubble);
  if (meta) {
    const small = document.createElement("div");
    small.className = "meta";
    small.textContent = meta;
    item.append(small);
  }
  $("log").append(item);
  $("log").scrollTop = $("log").scrollHeight;
  return item;
}

async function showStatus() {
  const session = await gw.session().catch(() => null);
  const badge = $("status");
  badge.dataset.level = session ? session.level : "none";
  badge.textContent = session ? `${session.user_id} · ${session.level}` : t("noSession");
  $("login").hidden = Boolean(siteUser);
}

// --- Chat over the WebSocket, with the SSE typing indicator --------------------------------
let socket = null;
let connecting = null;
const inflight = []; // messages sent and not yet answered: {payload, resolve}

function connect() {
  if (!connecting) connecting = openSocket().finally(() => { connecting = null; });
  return connecting;
}

async function openSocket() {
  if (socket) {
    const old = socket;
    socket = null;
    old.close(1000);
  }
  const ws = await gw.websocket("/ws");
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;
    const waiting = inflight.shift();
    if (waiting) waiting.resolve(JSON.parse(event.data));
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    document.body.dataset.socket = "closed";
    // 4401: the session behind this socket is gone or was rotated (logout, code verified);
    // 4403: it no longer qualifies. A new socket gets the current session and the messages
    // the old one did not answer (they never reached the bot). Anything else: plain HTTP.
    if (event.code === 4401 || event.code === 4403) connect().catch(overHttp);
    else overHttp();
  });
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error("WebSocket failed")), { once: true });
  });
  socket = ws;
  document.body.dataset.socket = "open";
  for (const message of inflight) ws.send(message.payload);
}

// The same chat over gw.fetch, for when no socket can be had.
function overHttp() {
  for (const message of inflight.splice(0)) {
    gw.fetch("/api/chat", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: message.payload,
    })
      .then((response) => response.json())
      .then(message.resolve, (e) => message.resolve({ reply: t("error", e), sender: "?" }));
  }
}

function ask(text) {
  const payload = JSON.stringify({ message: text, lang });
  return new Promise((resolve) => {
    inflight.push({ payload, resolve });
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(payload);
    else if (!connecting) connect().catch(overHttp);
  });
}

async function typing() {
  const line = $("typing");
  line.textContent = "";
  line.hidden = false;
  let source;
  try {
    source = await gw.eventSource(`/api/chat/stream?lang=${lang}`);
  } catch {
    line.hidden = true;
    return;
  }
  await new Promise((resolve) => {
    const finish = () => {
      source.close();
      resolve();
    };
    source.addEventListener("message", (event) => {
      line.textContent += (line.textContent ? " " : "") + JSON.parse(event.data).word;
    });
    source.addEventListener("done", finish);
    source.addEventListener("error", finish);
    setTimeout(finish, 5000);
  });
  line.hidden = true;
}

async function send(text) {
  say("me", text);
  const [reply] = await Promise.all([ask(text), typing()]);
  say("bot", reply.reply, t("seen", reply.sender));
  document.body.dataset.replies = String(Number(document.body.dataset.replies || 0) + 1);
}

// --- The account: gw.fetch, and the dialog onOtpRequired opens -----------------------------
async function showBalance() {
  const response = await gw.fetch("/api/account/balance");
  if (response.ok) {
    say("system good", t("balanceIs", await response.json()));
  } else {
    const problem = await response.json().catch(() => ({}));
    say("system bad", t("refused", problem.error || response.status));
  }
  await showStatus();
}

function otpDialog(step) {
  say("system", t("needsCode"));
  const panel = $("otp-panel");
  const error = $("otp-error");
  const signedIn = Boolean(siteUser);
  panel.hidden = false;
  error.textContent = "";
  $("otp-number").value = "";
  $("otp-code").value = "";
  $("otp-code-row").hidden = true;
  $("otp-number-row").hidden = signedIn;
  panel.dataset.stage = signedIn ? "code" : "number";

  return new Promise((resolve) => {
    const close = (result) => {
      panel.hidden = true;
      panel.dataset.stage = "";
      $("otp-send").onclick = $("otp-verify").onclick = $("otp-cancel").onclick = null;
      resolve(result);
    };
    const sendCode = async (userId) => {
      try {
        const sent = await step.send(userId);
        say("system", t("codeSent", sent));
        $("otp-code-label").textContent = t("codeFor", sent);
        $("otp-number-row").hidden = true;
        $("otp-code-row").hidden = false;
        panel.dataset.stage = "code";
        error.textContent = "";
        $("otp-code").focus();
      } catch (e) {
        error.textContent = e.message;
      }
    };
    $("otp-send").onclick = () => {
      const number = $("otp-number").value.trim();
      if (!number) {
        error.textContent = t("needNumber");
        return;
      }
      sendCode(number);
    };
    $("otp-verify").onclick = async () => {
      try {
        const verified = await step.verify($("otp-code").value);
        say("system good", t("verified", verified));
        // The session id rotated: a new socket carries the new identity.
        await connect().catch(() => {});
        close(await step.retry());
      } catch (e) {
        error.textContent = e.error === "otp_invalid" ? t("wrongCode", e) : e.message;
      }
    };
    $("otp-cancel").onclick = () => close(null);
    if (signedIn) sendCode();
    else $("otp-number").focus();
  });
}

async function logout() {
  await gw.logout();
  siteUser = null;
  gw = makeClient();
  say("system", t("loggedOut"));
  await connect().catch(() => {});
  await showStatus();
}

async function login() {
  siteUser = "alice";
  gw = makeClient();
  const me = await gw.fetch("/api/profile/me");
  if (me.ok) {
    say("system good", t("signedIn", { user_id: (await me.json()).user_id,
                                        level: "authenticated" }));
  } else {
    const problem = await me.json().catch(() => ({}));
    say("system bad", t("error", { message: problem.message || me.status }));
    siteUser = null;
    gw = makeClient();
  }
  await connect().catch(() => {});
  await showStatus();
}

// --- Wiring ------------------------------------------------------------------------------
function applyLanguage() {
  document.documentElement.lang = lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => {
    el.textContent = t(el.dataset.i18n);
  });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  $("lang-en").setAttribute("aria-pressed", String(lang === "en"));
  $("lang-de").setAttribute("aria-pressed", String(lang === "de"));
  document.title = t("title");
}

const guard = (action) => () => action().catch((e) => say("system bad", t("error", e)));

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value.trim();
  if (!text) return;
  $("message").value = "";
  guard(() => send(text))();
});
$("balance").addEventListener("click", guard(showBalance));
$("logout").addEventListener("click", guard(logout));
$("login").addEventListener("click", guard(login));
for (const code of ["en", "de"]) {
  $(`lang-${code}`).addEventListener("click", () => {
    lang = code;
    applyLanguage();
    showStatus();
  });
}

applyLanguage();
say("bot", t("welcome"));
guard(async () => {
  await connect().catch(() => {}); // without a socket, messages go over HTTP
  await showStatus();
  document.body.dataset.ready = "1";
})();
