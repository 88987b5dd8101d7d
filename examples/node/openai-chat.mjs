// Example: the official `openai` package (a pinned dev dependency of the repository's
// package.json) against ai-gateway's OpenAI-compatible routes: only the base URL changes.
//
//   node openai-chat.mjs <base URL, e.g. http://127.0.0.1:8080/v1> <model> <prompt>
//
// The gateway key comes from AIGW_TOKEN. Prints one JSON line per call: a completion, a
// stream (with usage), and the model list; a refused call prints its status and error code
// and exits 1.
import OpenAI from "openai";

const [baseURL, model, prompt] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: process.env.AIGW_TOKEN ?? "unused", maxRetries: 0 });
const messages = [{ role: "user", content: prompt }];

try {
  const raw = await client.chat.completions.create({ model, messages }).withResponse();
  console.log(
    JSON.stringify({
      call: "create",
      content: raw.data.choices[0].message.content,
      finishReason: raw.data.choices[0].finish_reason,
      usage: raw.data.usage,
      provider: raw.response.headers.get("x-gateway-provider"),
      requestId: raw.data._request_id,
    }),
  );

  const stream = await client.chat.completions.create({
    model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  let content = "";
  let chunks = 0;
  let usage = null;
  for await (const chunk of stream) {
    chunks += 1;
    if (chunk.choices.length > 0) content += chunk.choices[0].delta.content ?? "";
    else usage = chunk.usage;
  }
  console.log(JSON.stringify({ call: "stream", content, chunks, usage }));

  const models = [];
  for await (const entry of client.models.list()) models.push(entry.id);
  console.log(JSON.stringify({ call: "models", models }));
} catch (error) {
  console.log(JSON.stringify({ error: error.status ?? null, code: error.code ?? null }));
  process.exit(1);
}
