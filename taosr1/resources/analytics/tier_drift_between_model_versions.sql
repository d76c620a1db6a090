-- For pairs scored by two model versions on the same day: how tiers moved (old tier -> new tier).
WITH v AS (
  SELECT ds, model_version, MIN(scored_at) AS first_scored FROM relevance_scores GROUP BY ds, model_version
), ranked AS (
  SELECT ds, model_version, ROW_NUMBER() OVER (PARTITION BY ds ORDER BY first_scored DESC, model_version) AS rk
  FROM v
), newest AS (SELECT ds, model_version FROM ranked WHERE rk = 1),
   previous AS (SELECT ds, model_version FROM ranked WHERE rk = 2)
SELECT n.ds, p.model_version AS old_version, n.model_version AS new_version,
       o.tier AS old_tier, c.tier AS new_tier, COUNT(*) AS pairs
FROM newest n
JOIN previous p ON p.ds = n.ds
JOIN relevance_scores c ON c.ds = n.ds AND c.model_version = n.model_version
JOIN relevance_scores o ON o.ds = p.ds AND o.model_version = p.model_version
  AND o.query_id = c.query_id AND o.product_id = c.product_id
GROUP BY n.ds, p.model_version, n.model_version, o.tier, c.tier
ORDER BY n.ds, o.tier, c.tier
