// Turning a run into what people read: medians and bars, a Markdown page and an SVG chart.
export { summarize, computeBars, pairedMedian } from './summary';
export { renderMarkdown } from './markdown';
export { renderSvg } from './svg-chart';
