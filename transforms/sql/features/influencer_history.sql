CREATE OR REPLACE VIEW features.influencer_history AS
FROM features.influencer_history_between(NULL, NULL);
