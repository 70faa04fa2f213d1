// Starts the app once the server-rendered page is on screen. Fetched and
// compiled before the first paint, the wasm held that paint back: its
// download took the bandwidth the page needed, its compile the main thread
// that paints. The page is sent whole, so it reads and scrolls meanwhile.
// The wasm, and the chunks of a lazily loaded page, are fetched beside the
// glue rather than after it. Arguments: the glue module, its wasm, the chunks.
((glue, wasm, chunks) => {
	let started = false;
	const start = () => {
		if (started) return;
		started = true;
		// Hydrating in a task of its own, not the one that instantiated the
		// wasm, lets a tap in between be handled.
		import(glue).then((app) =>
			app.default({ module_or_path: wasm }).then(() => setTimeout(app.hydrate, 0)),
		);
		for (const href of [wasm, ...chunks]) {
			const link = document.createElement('link');
			link.rel = 'preload';
			link.as = 'fetch';
			link.type = 'application/wasm';
			// As the glue's and the chunk loader's fetch() ask, or the
			// preload goes unused.
			link.crossOrigin = 'anonymous';
			link.href = href;
			document.head.append(link);
		}
	};
	// The browser says when the first paint reached the screen (a frame
	// callback comes before that). A tab opened in the background paints
	// nothing until shown, and a browser that does not say gets a frame:
	// no reason to wait there. The timer is a backstop.
	const paints = window.PerformanceObserver?.supportedEntryTypes?.includes('paint');
	if (document.visibilityState === 'hidden') {
		start();
	} else if (paints) {
		new PerformanceObserver((entries, observer) => {
			if (entries.getEntriesByName('first-contentful-paint').length) {
				observer.disconnect();
				start();
			}
		}).observe({ type: 'paint', buffered: true });
		setTimeout(start, 3000);
	} else {
		requestAnimationFrame(() => setTimeout(start, 0));
	}
})
