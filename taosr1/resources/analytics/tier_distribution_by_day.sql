-- Tier mix per day and model version: how many pairs are Good / Mid / Bad, and their share of the day.
SELECT ds, model_version, tier, COUNT(*) AS pairs,
       ROUND(COUNT(*) * 1.0 / SUM(COUNT(*)) OVER (PARTITION BY ds, model_version), 4) AS share
FROM relevance_scores
GROUP BY ds, model_version, tier
ORDER BY ds, model_version, tier
