// Still pictures (snapshots) on cards, refreshed in the background: only those on screen,
// only while the page is visible, a couple at a time, each swapped in once fully loaded
// (no flicker, and a failed refresh keeps the previous picture).

const CONCURRENT = 2;

export class Stills {
  constructor() {
    this.entries = new Map(); // url -> {url, period, due, visible, objectUrl, images:Set}
    this.loading = 0;
    this.observer = new IntersectionObserver((records) => {
      for (const record of records) {
        const entry = this.entries.get(record.target.dataset.stillUrl);
        if (!entry) continue;
        if (record.isIntersecting) entry.visibleBoxes.add(record.target);
        else entry.visibleBoxes.delete(record.target);
      }
      this.pump();
    }, { rootMargin: "200px" });
    setInterval(() => this.pump(), 1000);
    document.addEventListener("visibilitychange", () => this.pump());
  }

  /** Show the still of `url` in `img`, refreshed every `period` seconds while `box` (the
   * element around it, which stays laid out while the image is still empty) is on screen. */
  attach(img, url, period, box = img) {
    let entry = this.entries.get(url);
    if (!entry) {
      entry = { url, period, due: 0, objectUrl: null, images: new Set(), visibleBoxes: new Set() };
      this.entries.set(url, entry);
    }
    entry.images.add(img);
    img.stillBox = box;
    box.dataset.stillUrl = url;
    if (entry.objectUrl) {
      img.src = entry.objectUrl;
      box.classList.add("has-still");
    }
    this.observer.observe(box);
  }

  /** Forget images that left the document. */
  prune() {
    for (const entry of this.entries.values()) {
      for (const img of entry.images) {
        if (!img.isConnected) {
          entry.images.delete(img);
          entry.visibleBoxes.delete(img.stillBox);
          this.observer.unobserve(img.stillBox);
        }
      }
    }
  }

  pump() {
    if (document.hidden) return;
    const now = performance.now();
    for (const entry of this.entries.values()) {
      if (this.loading >= CONCURRENT) return;
      if (entry.loading || !entry.visibleBoxes.size || now < entry.due) continue;
      this.load(entry);
    }
  }

  async load(entry) {
    entry.loading = true;
    this.loading++;
    try {
      const response = await fetch(entry.url, { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        const blob = await response.blob();
        const objectUrl = URL.createObjectURL(blob);
        const previous = entry.objectUrl;
        entry.objectUrl = objectUrl;
        for (const img of entry.images) {
          img.src = objectUrl;
          img.stillBox.classList.add("has-still");
        }
        if (previous) setTimeout(() => URL.revokeObjectURL(previous), 1000);
      }
    } catch {
      // keep the previous picture; try again next period
    } finally {
      entry.loading = false;
      entry.due = performance.now() + entry.period * 1000;
      this.loading--;
      this.pump();
    }
  }
}
