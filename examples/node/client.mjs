// Calls the gateway's Complete and StreamComplete over gRPC from Node.js, with the code that
// `npx buf generate --template examples/node/buf.gen.yaml` puts in ./gen and Connect's gRPC
// transport. Prints one JSON line per call; on an error, the gRPC status and exit status 1.
//
//   node examples/node/client.mjs [host:port] [model] [prompt]
//   AIGW_TOKEN=...  sends `authorization: Bearer ...` (an API key or INTERNAL_AUTH_TOKEN)
import { toJson } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { GatewayService, UsageSchema } from "./gen/gateway/v1/gateway_pb.js";

const [address = "localhost:50051", model = "mock", prompt = "Hello!"] = process.argv.slice(2);
const headers = process.env.AIGW_TOKEN ? { authorization: `Bearer ${process.env.AIGW_TOKEN}` } : {};
const request = { model, messages: [{ role: "user", content: prompt }] };

// Plain-text HTTP/2 (h2c), as the gateway serves by default; use https:// behind TLS.
const transport = createGrpcTransport({ baseUrl: `http://${address}` });
const client = createClient(GatewayService, transport);

const print = (line) => console.log(JSON.stringify(line));
const usage = (message) => (message.usage ? toJson(UsageSchema, message.usage) : null);

let rpc = "Complete";
try {
  const reply = await client.complete(request, { headers, timeoutMs: 30_000 });
  print({
    rpc,
    provider: reply.provider,
    model: reply.model,
    content: reply.content,
    finishReason: reply.finishReason,
    usage: usage(reply),
    costUsd: reply.costUsd,
  });

  rpc = "StreamComplete";
  let content = "";
  let messages = 0;
  let last;
  for await (const message of client.streamComplete(request, { headers, timeoutMs: 30_000 })) {
    content += message.delta;
    messages += 1;
    last = message;
  }
  print({ rpc, content, messages, finishReason: last?.finishReason, usage: last && usage(last) });
} catch (error) {
  const failure = ConnectError.from(error);
  // The gRPC status, named as in gRPC but lower-case: "unavailable", "resource_exhausted"...
  print({ rpc, error: codeToString(failure.code), message: failure.rawMessage });
  process.exitCode = 1;
}
