"""Relevance knowledge several layers share: the versioned rule set (``rules``), the rule-reading teacher that
writes the five-step CoT (``teacher``) and the query-type tagger (``tagger``). Corpora, the rules engine and the
candidate sampler import it; it imports none of them."""
