-- Does the judge agree with users? CTR and order rate of the newest candidate window's pairs, by the model's tier
-- (newest score of each pair) and by the human label. Engagement is a signal to compare, never a label.
WITH latest_window AS (
  SELECT * FROM candidate_pairs WHERE window_id = (SELECT MAX(window_id) FROM candidate_pairs)
),
ranked AS (
  SELECT query_id, product_id, tier,
         ROW_NUMBER() OVER (PARTITION BY query_id, product_id ORDER BY scored_at DESC, ds DESC) AS r
  FROM relevance_scores
),
latest_score AS (SELECT query_id, product_id, tier FROM ranked WHERE r = 1)
SELECT 'model tier' AS grouping, s.tier AS value, COUNT(*) AS pairs, SUM(c.impressions) AS impressions,
       ROUND(SUM(c.clicks) / SUM(c.impressions), 4) AS ctr, ROUND(SUM(c.orders) / SUM(c.impressions), 4) AS order_rate
FROM latest_window c JOIN latest_score s ON c.query_id = s.query_id AND c.product_id = s.product_id
GROUP BY s.tier
UNION ALL
SELECT 'human label' AS grouping, CAST(c.label AS STRING) AS value, COUNT(*) AS pairs, SUM(c.impressions) AS impressions,
       ROUND(SUM(c.clicks) / SUM(c.impressions), 4) AS ctr, ROUND(SUM(c.orders) / SUM(c.impressions), 4) AS order_rate
FROM latest_window c WHERE c.label IS NOT NULL
GROUP BY c.label
ORDER BY grouping, value
