// ES module form of /auth/client.js: import { createGatewayClient } from "/auth/client.mjs";
// The classic script below defines globalThis.createGatewayClient; this re-exports it.
import "./client.js";

export const createGatewayClient = globalThis.createGatewayClient;
export default createGatewayClient;
