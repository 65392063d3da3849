// Assent from Kotlin (JVM or Android), end to end, with no collector needed: a transport
// written in Kotlin prints each upload instead of sending it. Run: make example-kotlin
import dev.assent.core.AssentClient
import dev.assent.core.AssentException
import dev.assent.core.ClientConfig
import dev.assent.core.HttpRequest
import dev.assent.core.HttpResponse
import dev.assent.core.HttpTransport
import java.nio.file.Files
import java.util.zip.GZIPInputStream

class PrintingTransport : HttpTransport {
    override fun post(request: HttpRequest): HttpResponse {
        val gzipped = request.headers["Content-Encoding"] == "gzip"
        val body = if (gzipped) GZIPInputStream(request.body.inputStream()).readBytes() else request.body
        val text = body.toString(Charsets.UTF_8)
        val events = Regex("\"messageId\"").findAll(text).count()
        println("POST ${request.url}: $events events")
        println(text)
        return HttpResponse(200u, null, """{"accepted":$events,"duplicates":0,"rejected":[]}""".toByteArray())
    }
}

fun main() {
    val config = ClientConfig(
        collectorUrl = "https://collector.example.com",
        writeKey = "WRITE_KEY",
        storageDir = Files.createTempDirectory("assent").toString(),
        appId = "com.example.kotlin",
        policyVersion = "2026-01",
    )
    AssentClient.withTransport(config, PrintingTransport()).use { client ->
        println("needs prompt: ${client.consent().needsPrompt}")
        println("track before consent -> ${client.track("App Opened", "{}")}")
        client.setConsent(mapOf("analytics" to true), "custom")
        println("track after consent  -> ${client.track("App Opened", """{"build":42}""")}")
        println("advertising (denied) -> ${client.track("Ad Shown", "{}", "advertising")}")
        try {
            client.track("Oops", "{}", "telepathy")
        } catch (e: AssentException.InvalidPurpose) {
            println("unknown purpose -> AssentException.InvalidPurpose")
        }
        println("flush: ${client.flush()}")
    }
}
