import { describe, expect, it } from "vitest";
import { isPyroError } from "../../src/contract/errors.js";
import { originRefusal, parseListenAddress } from "../../src/mcp/http-guard.js";

describe("--http [HOST:]PORT", () => {
  it("binds 127.0.0.1 unless a host is given", () => {
    expect(parseListenAddress("8080")).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(parseListenAddress("0.0.0.0:9000")).toEqual({ host: "0.0.0.0", port: 9000 });
    expect(parseListenAddress("localhost:0")).toEqual({ host: "localhost", port: 0 });
    expect(parseListenAddress("[::1]:8080")).toEqual({ host: "::1", port: 8080 });
  });

  it.each(["", "http", "65536", "host:", ":80", "[nothex]:80", "a b:80", "1.2.3.4:80:80"])(
    "refuses %j with invalid_argument",
    (text) => {
      let error: unknown;
      try {
        parseListenAddress(text);
      } catch (e) {
        error = e;
      }
      expect(isPyroError(error) && error.code).toBe("invalid_argument");
    },
  );
});

describe("Host and Origin check (DNS rebinding)", () => {
  const loopback = { host: "127.0.0.1", port: 8080 };

  it("a loopback server accepts loopback Host with no Origin or a loopback Origin", () => {
    for (const host of ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "LOCALHOST"]) {
      expect(originRefusal({ host }, loopback)).toBeUndefined();
    }
    for (const origin of ["http://localhost:3000", "https://127.0.0.1", "http://[::1]:5173"]) {
      expect(originRefusal({ host: "127.0.0.1:8080", origin }, loopback)).toBeUndefined();
    }
  });

  it("a loopback server refuses a foreign Host, a foreign Origin, or none of either", () => {
    expect(originRefusal({ host: "evil.example.com:8080" }, loopback)).toMatch(/Host/);
    expect(originRefusal({}, loopback)).toMatch(/Host/);
    for (const origin of [
      "http://evil.example.com",
      "null",
      "file://",
      "http://127.0.0.1.evil.com",
    ]) {
      expect(originRefusal({ host: "127.0.0.1:8080", origin }, loopback)).toMatch(/Origin/);
    }
  });

  it("a server on another address takes any Host but only a same-origin Origin", () => {
    const remote = { host: "0.0.0.0", port: 8080 };
    expect(originRefusal({ host: "build-box.lan:8080" }, remote)).toBeUndefined();
    expect(
      originRefusal({ host: "build-box.lan:8080", origin: "http://build-box.lan:8080" }, remote),
    ).toBeUndefined();
    expect(
      originRefusal({ host: "build-box.lan:8080", origin: "http://evil.example.com" }, remote),
    ).toMatch(/Origin/);
  });
});
