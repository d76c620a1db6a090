"""TaoSR1's data stages 1–3, one module per stage: ``splits`` (query-disjoint, deduplicated, class-balanced pairs),
``sft`` (teacher CoT kept where it agrees with the human label), ``pass_at_n`` (N samples per pair, resumable),
``dpo`` (right vs wrong samples) and ``difficulty`` (pass rate → bucket → GRPO set)."""
