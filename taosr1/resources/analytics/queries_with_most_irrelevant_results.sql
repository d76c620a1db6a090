-- Queries whose shown results are most often Bad (level 1) or Mid, per day: where search needs fixing first.
SELECT ds, query_id, MIN(query) AS query, COUNT(*) AS results,
       SUM(CASE WHEN tier = 'Bad' THEN 1 ELSE 0 END) AS bad,
       SUM(CASE WHEN tier = 'Mid' THEN 1 ELSE 0 END) AS mid,
       ROUND(AVG(expected_relevance), 3) AS mean_expected_relevance
FROM relevance_scores
GROUP BY ds, query_id
ORDER BY bad DESC, mid DESC, mean_expected_relevance ASC, query_id
LIMIT 50
