// OctIM buyer chat for a storefront page: one script tag, no build step.
//
//   <script src="https://cs.example.com/widget.js" data-shop="uniqlo-style"
//           data-token="<the buyer's JWT, issued by the platform>"
//           data-product="sku-1001" data-title="轻薄羽绒服" data-price="399"
//           data-image="https://…/p.jpg" data-order="o-1"></script>
//
// Adds a 联系客服 button; it opens /chat in a panel (full screen on phones).
(function () {
  var script = document.currentScript;
  if (!script) return;
  var base = new URL(script.src).origin;
  var data = script.dataset;
  var query = new URLSearchParams({ shop: data.shop || "" });
  ["product", "order", "title", "price", "image", "page", "category"].forEach(function (k) {
    if (data[k]) query.set(k, data[k]);
  });
  var src = base + "/chat?" + query.toString() + (data.token ? "#token=" + encodeURIComponent(data.token) : "");

  var button = document.createElement("button");
  button.type = "button";
  button.textContent = data.label || "联系客服";
  button.setAttribute("aria-expanded", "false");
  button.style.cssText = "position:fixed;right:20px;bottom:20px;z-index:2147483000;padding:12px 18px;" +
    "border:0;border-radius:24px;background:#e4393c;color:#fff;font-size:15px;cursor:pointer;" +
    "box-shadow:0 4px 14px rgba(0,0,0,.2)";
  var frame = null;

  function place() {
    if (!frame) return;
    var phone = window.innerWidth < 600;
    frame.style.cssText = "position:fixed;z-index:2147483001;border:0;background:#fff;" +
      "box-shadow:0 8px 30px rgba(0,0,0,.25);" + (phone
        ? "inset:0;width:100%;height:100%;"
        : "right:20px;bottom:76px;width:380px;height:600px;max-height:calc(100vh - 96px);border-radius:12px;");
  }

  button.addEventListener("click", function () {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.src = src;
      frame.title = button.textContent;
      frame.allow = "clipboard-read; clipboard-write";
      document.body.appendChild(frame);
      place();
      window.addEventListener("resize", place);
    } else {
      frame.hidden = !frame.hidden;
    }
    button.setAttribute("aria-expanded", String(!frame.hidden));
  });
  document.body.appendChild(button);
})();
