-- The top of each snapshot's hierarchical tree, for its dendrogram: the last merges of the
-- linkage (at most models.hierarchical.DENDROGRAM_MERGES rows, whatever the number of influencers),
-- numbered as SciPy's linkage numbers them, so that the rows are a linkage matrix again.
-- Nodes 0 .. merges are the leaves of the truncated tree (subtrees of `size` influencers);
-- merge m creates node merges + 1 + m.
-- Grain: one row per kept merge of the tree per snapshot. Key: (version, merge).
CREATE TABLE clusters.dendrogram (
    version  INTEGER NOT NULL,
    merge    INTEGER NOT NULL,    -- 0 = lowest kept merge
    "left"   INTEGER NOT NULL,    -- node ids (see above)
    "right"  INTEGER NOT NULL,
    height   DOUBLE NOT NULL,     -- linkage distance, in the clustered (scaled) units
    size     INTEGER NOT NULL,    -- influencers under the merged node
    left_size  INTEGER NOT NULL,  -- influencers under each child
    right_size INTEGER NOT NULL,
    PRIMARY KEY (version, merge)
);
