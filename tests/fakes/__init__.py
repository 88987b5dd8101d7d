"""Loopback fakes of vendor APIs: real servers on 127.0.0.1 speaking each vendor's wire format.

- `base`: the server every fake shares (recording, refusals, faults, scripted answers).
- `script`: what the model says (`Answer`, `ToolCall`), minted ids and signatures.
- `<vendor>_server`: one fake per vendor, rendering answers in its bodies and stream frames,
  its chat and embeddings endpoints; `<vendor>_rules`: what that vendor refuses, with sources.
- `rules`: shared facts (base64, data URLs, image types, structured-output schema subsets).
- `embeddings`: the deterministic vectors every fake embeds with; `probe`: plain HTTP calls
  to a fake, for tests of the fakes.
"""
