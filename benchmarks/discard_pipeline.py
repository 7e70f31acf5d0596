"""An item pipeline that keeps nothing: the crawl's throughput without storage."""


class DiscardPipeline:
    def process_item(self, item):
        return item
