// Mints NextAuth / Auth.js session tokens with the real packages: `@auth/core` 0.41.3 (the
// version next-auth@5.0.0-beta.32 pins) for Auth.js v5, `next-auth` 4.24.15's `jwt` module for
// NextAuth v4, and `jose` (the library both use) for the variants their `encode` never makes
// (A256GCM under Auth.js v5 keys, unknown `enc`/`alg`). Chunked cookies are cut by @auth/core's
// own SessionStore.
//
// Three uses:
//   node mint.mjs --fixtures <file.json>   the Rust unit-test fixtures (src/auth/testdata)
//   node mint.mjs token --secret S [--kind authjs|authjs-gcm|v4] [--salt NAME]
//                       [--claims JSON] [--max-age SECONDS]          prints one token
//   node mint.mjs cookie --secret S [--name authjs.session-token] [--kind ...] [--claims JSON]
//                        [--max-age SECONDS] [--pad N]               prints a Cookie header value
//                                                                    (chunked when long)
// and `import { mintAuthjs, mintNextAuthV4, mintJose, cookieHeader } from ".../mint.mjs"`
// from the black-box tests.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { encode as authjsEncode, decode as authjsDecode } from "@auth/core/jwt";
import { hkdf } from "@panva/hkdf";
import { EncryptJWT, base64url, calculateJwkThumbprint } from "jose";
// SessionStore is not exported by @auth/core; its module is imported by path so chunking is
// exactly the package's own (version pinned in package.json).
import { SessionStore } from "./node_modules/@auth/core/lib/utils/cookie.js";

const require = createRequire(import.meta.url);
const nextAuthV4 = require("next-auth/jwt");

export const AUTHJS_COOKIE = "authjs.session-token";
export const AUTHJS_SECURE_COOKIE = "__Secure-authjs.session-token";
export const NEXTAUTH_COOKIE = "next-auth.session-token";
export const NEXTAUTH_SECURE_COOKIE = "__Secure-next-auth.session-token";

/** An Auth.js v5 session token (A256CBC-HS512, kid = key thumbprint), via @auth/core's encode. */
export function mintAuthjs({ secret, salt = AUTHJS_COOKIE, claims = {}, maxAge } = {}) {
  return authjsEncode({ token: claims, secret, salt, maxAge });
}

/** A NextAuth v4 session token (A256GCM, no kid), via next-auth@4's jwt encode. */
export function mintNextAuthV4({ secret, claims = {}, maxAge } = {}) {
  return nextAuthV4.encode({ token: claims, secret, maxAge });
}

/**
 * A token under Auth.js v5 key derivation built with jose directly, for what @auth/core's
 * encode never emits but its decode (or a custom encode) meets: `enc` A256GCM, no `kid`, or an
 * unknown `enc`/`alg`.
 */
export async function mintJose({
  secret,
  salt = AUTHJS_COOKIE,
  claims = {},
  maxAge = 30 * 24 * 3600,
  enc = "A256GCM",
  alg = "dir",
  kid = true,
} = {}) {
  const length = { "A256CBC-HS512": 64, A256GCM: 32, "A128CBC-HS256": 32, A128GCM: 16 }[enc];
  const key = await hkdf("sha256", secret, salt, `Auth.js Generated Encryption Key (${salt})`, length);
  const header = { alg, enc };
  if (kid) {
    header.kid = await calculateJwkThumbprint(
      { kty: "oct", k: base64url.encode(key) },
      `sha${key.byteLength << 3}`,
    );
  }
  const now = Math.floor(Date.now() / 1000);
  const jwt = new EncryptJWT(claims)
    .setProtectedHeader(header)
    .setIssuedAt(now)
    .setExpirationTime(now + maxAge)
    .setJti(crypto.randomUUID());
  // Key wrapping needs a key of the wrap size; the token is only used to test refusal.
  return jwt.encrypt(alg === "dir" ? key : key.subarray(0, 32));
}

/**
 * The `Cookie:` header value carrying `token` as cookie `name`, cut into `.0`, `.1`, … chunks by
 * @auth/core's SessionStore when it is longer than one cookie allows. `extra` cookies go around
 * it, as a browser sends the app's other cookies too.
 */
export function cookieHeader(name, token, extra = { theme: "dark", "authjs.csrf-token": "abc%7Cdef" }) {
  const logger = { debug() {}, error() {}, warn() {} };
  const store = new SessionStore({ name, options: {} }, {}, logger);
  const parts = store.chunk(token, {}).filter((c) => c.value !== "");
  const pairs = [];
  const entries = Object.entries(extra);
  const half = Math.ceil(entries.length / 2);
  for (const [k, v] of entries.slice(0, half)) pairs.push(`${k}=${v}`);
  // Chunks in reverse order: the reader must sort them by their numeric suffix.
  for (const c of parts.reverse()) pairs.push(`${c.name}=${c.value}`);
  for (const [k, v] of entries.slice(half)) pairs.push(`${k}=${v}`);
  return { header: pairs.join("; "), chunks: parts.length };
}

/** Flips one bit in the middle of part `index` (0..4) of a compact JWE. */
export function tamper(token, index) {
  const parts = token.split(".");
  const bytes = Buffer.from(parts[index], "base64url");
  bytes[bytes.length >> 1] ^= 0x01;
  parts[index] = bytes.toString("base64url");
  return parts.join(".");
}

/** Whether the real decoder of the token's family accepts it, with `secrets` and `salt`. */
async function nodeAccepts({ family, token, secrets, salt }) {
  try {
    if (family === "v4") {
      // next-auth@4 takes one secret; rotation is the caller's loop.
      for (const secret of secrets) {
        try {
          if (await nextAuthV4.decode({ token, secret })) return true;
        } catch {}
      }
      return false;
    }
    return (await authjsDecode({ token, secret: secrets, salt })) !== null;
  } catch {
    return false;
  }
}

const SECRETS = {
  current: "sio-edge fixture secret: current",
  old: "sio-edge fixture secret: rotated out",
  other: "sio-edge fixture secret: some other app",
};

const USER = {
  sub: "user-42",
  name: "Ada Lovelace",
  email: "ada@example.test",
  picture: "https://example.test/ada.png",
  role: "admin",
  conversations: ["c1", "c2"],
};

/** Every fixture case: how it was minted, and what the real decoder says about it. */
async function fixtures() {
  const hour = 3600;
  const year = 365 * 24 * hour;
  const cur = SECRETS.current;
  const valid = await mintAuthjs({ secret: cur, claims: USER, maxAge: year });
  const v4 = await mintNextAuthV4({ secret: cur, claims: USER, maxAge: year });
  const bigClaims = { ...USER, padding: "x".repeat(6000) };
  const big = await mintAuthjs({ secret: cur, claims: bigClaims, maxAge: year });
  const cases = [
    // [name, family, token, salt checked against]
    ["authjs_valid", "authjs", valid, AUTHJS_COOKIE],
    [
      "authjs_secure_valid",
      "authjs",
      await mintAuthjs({ secret: cur, salt: AUTHJS_SECURE_COOKIE, claims: USER, maxAge: year }),
      AUTHJS_SECURE_COOKIE,
    ],
    [
      "authjs_old_secret",
      "authjs",
      await mintAuthjs({ secret: SECRETS.old, claims: USER, maxAge: year }),
      AUTHJS_COOKIE,
    ],
    [
      "authjs_expired",
      "authjs",
      await mintAuthjs({ secret: cur, claims: USER, maxAge: -hour }),
      AUTHJS_COOKIE,
    ],
    [
      "authjs_not_yet_valid",
      "authjs",
      await mintAuthjs({
        secret: cur,
        claims: { ...USER, nbf: Math.floor(Date.now() / 1000) + hour },
        maxAge: year,
      }),
      AUTHJS_COOKIE,
    ],
    [
      "authjs_wrong_secret",
      "authjs",
      await mintAuthjs({ secret: SECRETS.other, claims: USER, maxAge: year }),
      AUTHJS_COOKIE,
    ],
    // Minted for the plain cookie, presented as the __Secure- one: the salt differs.
    ["authjs_wrong_salt", "authjs", valid, AUTHJS_SECURE_COOKIE],
    ["authjs_tampered_header", "authjs", tamperHeader(valid), AUTHJS_COOKIE],
    ["authjs_tampered_iv", "authjs", tamper(valid, 2), AUTHJS_COOKIE],
    ["authjs_tampered_ciphertext", "authjs", tamper(valid, 3), AUTHJS_COOKIE],
    ["authjs_tampered_tag", "authjs", tamper(valid, 4), AUTHJS_COOKIE],
    [
      "authjs_gcm_valid",
      "authjs",
      await mintJose({ secret: cur, claims: USER, maxAge: year, enc: "A256GCM" }),
      AUTHJS_COOKIE,
    ],
    [
      "authjs_no_kid_valid",
      "authjs",
      await mintJose({ secret: cur, claims: USER, maxAge: year, enc: "A256CBC-HS512", kid: false }),
      AUTHJS_COOKIE,
    ],
    [
      "authjs_no_kid_tampered",
      "authjs",
      tamper(
        await mintJose({ secret: cur, claims: USER, maxAge: year, enc: "A256CBC-HS512", kid: false }),
        3,
      ),
      AUTHJS_COOKIE,
    ],
    [
      "authjs_unknown_enc",
      "authjs",
      await mintJose({ secret: cur, claims: USER, maxAge: year, enc: "A128CBC-HS256" }),
      AUTHJS_COOKIE,
    ],
    [
      "authjs_unknown_alg",
      "authjs",
      await mintJose({ secret: cur, claims: USER, maxAge: year, enc: "A256GCM", alg: "A256KW", kid: false }),
      AUTHJS_COOKIE,
    ],
    ["authjs_chunked", "authjs", big, AUTHJS_COOKIE],
    ["v4_valid", "v4", v4, ""],
    ["v4_expired", "v4", await mintNextAuthV4({ secret: cur, claims: USER, maxAge: -hour }), ""],
    [
      "v4_wrong_secret",
      "v4",
      await mintNextAuthV4({ secret: SECRETS.other, claims: USER, maxAge: year }),
      "",
    ],
    ["v4_tampered_ciphertext", "v4", tamper(v4, 3), ""],
    ["v4_tampered_tag", "v4", tamper(v4, 4), ""],
  ];
  const out = {};
  for (const [name, family, token, salt] of cases) {
    const secrets = [cur, SECRETS.old];
    out[name] = {
      family,
      token,
      salt,
      node_accepts: await nodeAccepts({ family, token, secrets, salt }),
    };
  }
  const chunked = cookieHeader(AUTHJS_COOKIE, big);
  out.authjs_chunked.cookie_header = chunked.header;
  out.authjs_chunked.chunks = chunked.chunks;
  out.v4_valid.cookie_header = cookieHeader(NEXTAUTH_SECURE_COOKIE, v4).header;
  return {
    comment:
      "Generated by tests/auth_tokens/mint.mjs --fixtures; node_accepts is the real package's decode with secrets [current, old] and the case's salt.",
    minted_at: Math.floor(Date.now() / 1000),
    packages: {
      "@auth/core": installedVersion("@auth/core"),
      "next-auth": installedVersion("next-auth"),
      jose: installedVersion("jose"),
    },
    secrets: SECRETS,
    cases: out,
  };
}

/** The version npm installed (package.json is not in every package's `exports`). */
function installedVersion(pkg) {
  const file = new URL(`./node_modules/${pkg}/package.json`, import.meta.url);
  return JSON.parse(readFileSync(file, "utf8")).version;
}

/** Changes the protected header's `typ` without touching `kid`: the AAD no longer matches. */
function tamperHeader(token) {
  const parts = token.split(".");
  const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
  header.typ = "JWT";
  parts[0] = Buffer.from(JSON.stringify(header)).toString("base64url");
  return parts.join(".");
}

function parseArgs(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${a} needs a value`);
    opts[key] = value;
    i++;
  }
  return opts;
}

async function mintFromArgs(opts, salt) {
  const claims = opts.claims ? JSON.parse(opts.claims) : { sub: "user-1" };
  if (opts.pad) claims.padding = "x".repeat(Number(opts.pad));
  const maxAge = opts["max-age"] !== undefined ? Number(opts["max-age"]) : undefined;
  const secret = opts.secret;
  if (!secret) throw new Error("--secret is required");
  switch (opts.kind ?? "authjs") {
    case "authjs":
      return mintAuthjs({ secret, salt, claims, maxAge });
    case "authjs-gcm":
      return mintJose({ secret, salt, claims, maxAge, enc: "A256GCM" });
    case "v4":
      return mintNextAuthV4({ secret, claims, maxAge });
    default:
      throw new Error(`unknown --kind ${opts.kind}`);
  }
}

async function main() {
  const [cmd, ...rest] = process.argv.slice(2);
  if (cmd === "--fixtures") {
    const file = rest[0];
    if (!file) throw new Error("--fixtures needs an output file");
    writeFileSync(file, JSON.stringify(await fixtures(), null, 2) + "\n");
  } else if (cmd === "token") {
    const opts = parseArgs(rest);
    process.stdout.write((await mintFromArgs(opts, opts.salt ?? AUTHJS_COOKIE)) + "\n");
  } else if (cmd === "cookie") {
    const opts = parseArgs(rest);
    const name = opts.name ?? AUTHJS_COOKIE;
    // Auth.js v5 salts with the cookie name; NextAuth v4 ignores it.
    const token = await mintFromArgs(opts, name);
    process.stdout.write(cookieHeader(name, token, {}).header + "\n");
  } else {
    process.stderr.write(
      "usage: node mint.mjs --fixtures FILE | token --secret S [...] | cookie --secret S [...]\n",
    );
    process.exit(2);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    process.stderr.write(`mint.mjs: ${e.stack ?? e}\n`);
    process.exit(1);
  });
}
