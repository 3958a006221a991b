// The API reference page: Swagger UI (served from static/vendor) rendering /api/v1/openapi.json.
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({ url: document.body.dataset.spec, dom_id: "#swagger-ui", deepLinking: true });
});
