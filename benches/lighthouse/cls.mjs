import puppeteer from 'puppeteer-core';
const browser = await puppeteer.launch({executablePath:'/usr/bin/chromium', args:['--headless=new','--no-sandbox','--disable-gpu']});
const page = await browser.newPage();
await page.setViewport({width: 412, height: 823, deviceScaleFactor: 1.75, isMobile: true});
await page.setExtraHTTPHeaders({Cookie: process.env.LIGHTHOUSE_COOKIE});
await page.evaluateOnNewDocument(() => {
  window.__log = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__log.push([Math.round(e.startTime), e.value.toFixed(3), document.body && document.body.getAttribute('data-hydrated'), e.sources.map(s => [s.node ? (s.node.outerHTML || s.node.textContent || '').slice(0,90) : null, JSON.stringify(s.previousRect), JSON.stringify(s.currentRect)])]); }).observe({type:'layout-shift', buffered:true});
});
await page.goto(process.argv[2]);
await page.waitForSelector('body[data-hydrated="true"]');
await new Promise(r=>setTimeout(r,800));
for (const l of await page.evaluate(() => window.__log)) console.log(JSON.stringify(l));
await browser.close();
